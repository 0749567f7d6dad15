"""All SQL is parameterized: no query passed to asyncpg is built from strings at run time
(f-strings, concatenation, % or .format). Values go in as $1, $2, ...; the only text spliced
into a query is a module constant (a fixed column list). Ruff's S608 catches some of this
too; this test catches all of it for the database calls."""

from __future__ import annotations

import ast
from pathlib import Path

from shared.config import REPO_ROOT

DB_CALLS = {"execute", "executemany", "fetch", "fetchrow", "fetchval", "copy_records_to_table"}


def constant_name(node: ast.expr) -> bool:
    """Fixed text, never data: a module constant such as `_PAYMENT_COLUMNS` (a column list),
    or a choice between two literals (`"FOR UPDATE" if lock else ""`)."""
    if isinstance(node, ast.IfExp):
        return all(isinstance(b, ast.Constant) for b in (node.body, node.orelse))
    return isinstance(node, ast.Name) and node.id.lstrip("_").isupper()


def built_sql(node: ast.expr) -> bool:
    if isinstance(node, ast.JoinedStr):
        return any(
            isinstance(v, ast.FormattedValue) and not constant_name(v.value) for v in node.values
        )
    if isinstance(node, ast.BinOp):
        return True
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
    )


def offenders() -> list[str]:
    found = []
    for folder in ("services", "shared"):
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in DB_CALLS
                    and node.args
                    and built_sql(node.args[0])
                ):
                    found.append(f"{Path(path).relative_to(REPO_ROOT)}:{node.lineno}")
    return found


def test_no_query_is_built_from_strings() -> None:
    assert offenders() == []


def test_the_check_finds_a_built_query(tmp_path: Path) -> None:
    tree = ast.parse('conn.execute(f"SELECT * FROM t WHERE id = {value}")')
    call = tree.body[0].value  # type: ignore[attr-defined]
    assert built_sql(call.args[0])
    assert not built_sql(ast.parse('"SELECT 1"').body[0].value)  # type: ignore[attr-defined]
    columns = ast.parse('f"SELECT {_COLUMNS} FROM t WHERE id = $1"').body[0]
    assert not built_sql(columns.value)  # type: ignore[attr-defined]
