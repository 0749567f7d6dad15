"""Where the services' CPU goes under load: py-spy samples every service process from outside
(`--nonblocking`: the processes are never paused) while a closed-loop load runs, and the
samples are summed by leaf function ("self") and by package (whose code was on the CPU:
the service's own, pydantic, temporalio, asyncpg, aiokafka, json, asyncio...).

py-spy needs ptrace rights over the processes (root, or kernel.yama.ptrace_scope = 0); when
it cannot attach, the profile says so and the CPU figures per process remain."""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from shared.config import REPO_ROOT

_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    if local.exists():
        return str(local)
    return shutil.which("py-spy")


def _is_project(path: str) -> bool:
    return path.startswith(str(REPO_ROOT)) and "site-packages/" not in path


def _project_path(path: str) -> str:
    """A project file's path from its package down (also when the services run from a copy
    of the tree inside the repository, such as a snapshot in a state directory)."""
    parts = Path(path).relative_to(REPO_ROOT).parts
    for index, part in enumerate(parts):
        if part in ("services", "shared", "bench", "deploy"):
            return "/".join(parts[index:])
    return "/".join(parts)


def _package(path: str) -> str:
    if "site-packages/" in path:
        rest = path.split("site-packages/", 1)[1]
        return rest.split("/", 1)[0].removesuffix(".py")
    if _is_project(path):
        return f"project: {'/'.join(_project_path(path).split('/')[:2])}"
    if "/lib/python3" in path:
        rest = path.split("/lib/python3", 1)[1].split("/", 1)[-1]
        return f"stdlib: {rest.split('/', 1)[0].removesuffix('.py')}"
    return path or "?"


def _frame(text: str) -> tuple[str, str]:
    match = _FRAME.match(text.strip())
    if not match:
        return text.strip(), ""
    return match["function"], match["file"]


def _idle(function: str, path: str) -> bool:
    """The event loop waiting in epoll, or a thread pool's thread waiting for work."""
    name = Path(path).name
    return name == "selectors.py" or (name == "threading.py" and "wait" in function)


# Frames every sample has: they say nothing about where the time goes.
_FRAMES_OF_EVERYTHING = ("__main__.py", "shared/runtime.py")


def summarize(raw: str, top: int = 12) -> dict[str, Any]:
    """Collapsed stacks ("f1;f2;f3 count" per line) -> totals by leaf function, by package
    of the leaf, and the project functions most often on the stack (inclusive). Samples
    whose leaf is waiting (epoll, a pool thread's wait) are counted apart as idle."""
    total = 0
    idle = 0
    leaf_functions: Counter[str] = Counter()
    leaf_packages: Counter[str] = Counter()
    project_inclusive: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_frame(f) for f in stack.split(";") if f]
        if not frames:
            continue
        function, path = frames[-1]
        if _idle(function, path):
            idle += count
            total -= count
            continue
        short = Path(path).name if path else ""
        leaf_functions[f"{function} ({short})"] += count
        leaf_packages[_package(path)] += count
        seen: set[str] = set()
        for function, path in frames:
            if _is_project(path) and not path.endswith(_FRAMES_OF_EVERYTHING):
                key = f"{function} ({_project_path(path)})"
                if key not in seen:
                    seen.add(key)
                    project_inclusive[key] += count

    def share(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"what": k, "samples": v, "percent": round(100 * v / total, 1)}
            for k, v in counter.most_common(top)
        ]

    if total <= 0:
        return {"samples": 0, "idle_samples_left_out": idle}
    return {
        "samples": total,
        "idle_samples_left_out": idle,
        "by_package_self": share(leaf_packages),
        "by_function_self": share(leaf_functions),
        "project_functions_inclusive": share(project_inclusive),
    }


async def record(pids: dict[str, int], seconds: float, rate: int = 100) -> dict[str, Any]:
    """py-spy every process of `pids` at once for `seconds`; a summary per name."""
    exe = py_spy()
    if exe is None:
        return {"error": "py-spy is not installed (pip install py-spy)"}
    out: dict[str, Any] = {"rate_hz": rate, "seconds": seconds, "tool": "py-spy --nonblocking"}
    with tempfile.TemporaryDirectory(prefix="bench-py-spy-") as tmp:
        procs: dict[str, tuple[asyncio.subprocess.Process, Path]] = {}
        for name, pid in pids.items():
            target = Path(tmp) / f"{name}.txt"
            procs[name] = (
                await asyncio.create_subprocess_exec(
                    exe,
                    "record",
                    "--pid",
                    str(pid),
                    "--duration",
                    str(max(1, int(seconds))),
                    "--rate",
                    str(rate),
                    "--format",
                    "raw",
                    "--nonblocking",
                    "--full-filenames",
                    "--output",
                    str(target),
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT,
                ),
                target,
            )
        for name, (proc, target) in procs.items():
            try:
                stdout, _ = await asyncio.wait_for(proc.communicate(), timeout=seconds + 60)
            except TimeoutError:
                proc.kill()
                out[name] = {"error": "py-spy did not finish"}
                continue
            if proc.returncode != 0 or not target.exists():
                text = stdout.decode(errors="replace").strip().splitlines()
                out[name] = {"error": (text[-1] if text else f"exit {proc.returncode}")[:300]}
                continue
            out[name] = summarize(target.read_text(encoding="utf-8", errors="replace"))
    return out
