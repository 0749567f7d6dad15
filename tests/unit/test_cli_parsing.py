"""The `grants` CLI's reading of what the user typed: identities, scores, amounts, ids,
visibility queries, files."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from grants_cli.parsing import (
    BadInput,
    Identity,
    collect_files,
    fresh_ref,
    parse_amount,
    parse_application_id,
    parse_identity,
    parse_scores,
    visibility_query,
)


def test_identities_are_role_and_user() -> None:
    assert parse_identity("advisor:kari.nordmann") == Identity(role="advisor", sub="kari.nordmann")
    assert parse_identity("head_of_section:ingrid.solberg").role == "head_of_section"
    applicant = parse_identity("applicant:981234765")
    assert (applicant.role, applicant.org, applicant.sub) == (
        "applicant",
        "981234765",
        "contact-981234765",
    )
    assert str(applicant) == "applicant:981234765"


@pytest.mark.parametrize(
    "text", ["advisor", "advisor:", "wizard:merlin", "applicant:98 12", ":kari.nordmann"]
)
def test_bad_identities_are_refused_with_the_reason(text: str) -> None:
    with pytest.raises(BadInput):
        parse_identity(text)


def test_scores_in_the_forms_order_or_named() -> None:
    expected = {
        "cooperation": 5,
        "relevance": 4,
        "feasibility": 4,
        "budget_realism": 3,
        "people_to_people": 5,
    }
    assert parse_scores("5,4,4,3,5") == expected
    assert parse_scores(" 5, 4 ,4,3,5 ") == expected
    named = "people_to_people=5,cooperation=5,relevance=4,feasibility=4,budget_realism=3"
    assert parse_scores(named) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("5,4,4", "takes 5 scores"),
        ("5,4,4,3,6", "must be 1 to 5"),
        ("5,4,4,3,0", "must be 1 to 5"),
        ("5,4,4,3,x", "not a whole number"),
        ("kindness=5,4,4,3,5", "unknown score"),
        ("cooperation=5,cooperation=4,4,3,5", "given twice"),
    ],
)
def test_bad_scores_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(BadInput, match=says):
        parse_scores(text)


def test_amounts_are_exact_positive_with_two_decimals() -> None:
    assert parse_amount("60000") == "60000"
    assert parse_amount("60 000.50") == "60000.50"
    assert parse_amount("1_000") == "1000"
    for bad in ("0", "-5", "1.234", "lots", "NaN", "Infinity"):
        with pytest.raises(BadInput):
            parse_amount(bad)


def test_application_ids_and_workflow_ids() -> None:
    app_id = uuid.uuid4()
    assert parse_application_id(str(app_id)) == app_id
    assert parse_application_id(f"application-{app_id}") == app_id
    assert parse_application_id(f"review-{app_id}") == app_id
    with pytest.raises(BadInput, match="not an application id"):
        parse_application_id("KO188")


def test_visibility_query_from_the_filters() -> None:
    assert visibility_query() == 'WorkflowType = "ApplicationLifecycle"'
    assert visibility_query(status="in_review", line="UD-PROJECT", advisor="kari.nordmann") == (
        'WorkflowType = "ApplicationLifecycle" AND ApplicationStatus = "in_review" '
        'AND FundingLine = "UD-PROJECT" AND Advisor = "kari.nordmann"'
    )
    assert visibility_query(open_only=True, extra="RequestedAmount > 100000").endswith(
        'AND ExecutionStatus = "Running" AND (RequestedAmount > 100000)'
    )


@pytest.mark.parametrize(
    "filters",
    [
        {"status": "pending"},
        {"advisor": 'x" OR Advisor != "'},
        {"line": "UD PROJECT"},
    ],
)
def test_visibility_query_refuses_what_is_no_code(filters: dict[str, Any]) -> None:
    with pytest.raises(BadInput):
        visibility_query(**filters)


def test_files_and_directories(tmp_path: Path) -> None:
    (tmp_path / "b.json").write_text("{}")
    (tmp_path / "a.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("")
    single = tmp_path / "single.json"
    single.write_text("{}")
    sub = tmp_path / "dir"
    sub.mkdir()
    (sub / "z.json").write_text("{}")
    assert collect_files([sub, single]) == [sub / "z.json", single]
    assert [p.name for p in collect_files([tmp_path])] == ["a.json", "b.json", "single.json"]
    with pytest.raises(BadInput, match="no such file"):
        collect_files([tmp_path / "missing.json"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BadInput, match=r"no \*\.json"):
        collect_files([empty])


def test_fresh_refs_are_unique_and_fit() -> None:
    first, second = fresh_ref("portal-2027-0080"), fresh_ref("portal-2027-0080")
    assert first != second
    assert first.startswith("portal-2027-0080-")
    assert len(fresh_ref("x" * 100)) == 100
    assert fresh_ref(None).startswith("cli-")
