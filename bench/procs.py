"""The stack's processes seen from /proc: which pids make each component (from the pid files
`./dev` writes under the state directory; Postgres: every process of the cluster listening on
the configured port), their memory (VmRSS; PSS where readable) and their CPU time.

A `Sampler` reads them once a second in the background, so every phase of the run knows the
CPU each component used (in % of one core), the machine's busy share, and each component's
peak memory. CPU of the services is also split by thread name (the event loop's thread
`python` against Temporal's Rust core threads and others)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.config import Settings

SERVICES = ("intake", "review", "payments", "notifications")
INFRA = ("kafka", "temporal", "postgres")
HELPERS = ("maildev", "sms-gateway", "codec-server")
COMPONENTS = (*SERVICES, *INFRA, *HELPERS, "bench")

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _stat_fields(pid: int | str, task: str | None = None) -> list[str] | None:
    path = f"/proc/{pid}/task/{task}/stat" if task else f"/proc/{pid}/stat"
    text = _read(path)
    if text is None:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    head, _, rest = text.rpartition(")")
    name = head.partition("(")[2]
    return [name, *rest.split()]


def cpu_ticks(pid: int) -> int | None:
    fields = _stat_fields(pid)
    if fields is None:
        return None
    # After the name: state(1) ppid(2) ... utime(12) stime(13) in this list.
    return int(fields[12]) + int(fields[13])


def thread_ticks(pid: int) -> dict[str, int]:
    """CPU ticks of a process's threads, summed by thread name."""
    out: dict[str, int] = defaultdict(int)
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return {}
    for tid in tasks:
        fields = _stat_fields(pid, tid)
        if fields is not None:
            out[fields[0]] += int(fields[12]) + int(fields[13])
    return dict(out)


def io_counters(pid: int) -> tuple[int, int] | None:
    """(bytes written to storage, write syscalls) of a process, from /proc/<pid>/io."""
    text = _read(f"/proc/{pid}/io")
    if text is None:
        return None
    values = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
    try:
        return int(values["write_bytes"]), int(values["syscw"])
    except (KeyError, ValueError):
        return None


def rss_kib(pid: int) -> int | None:
    text = _read(f"/proc/{pid}/status")
    if text is None:
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0  # a kernel thread or a zombie


def pss_kib(pid: int) -> int | None:
    """Proportional set size: shared pages divided among their users (needs ptrace access)."""
    text = _read(f"/proc/{pid}/smaps_rollup")
    if text is None:
        return None
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return None


def _ppids() -> dict[int, int]:
    out: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(entry)
            if fields is not None:
                out[int(entry)] = int(fields[2])
    return out


def _with_descendants(root: int, ppids: dict[int, int]) -> list[int]:
    children: dict[int, list[int]] = defaultdict(list)
    for pid, ppid in ppids.items():
        children[ppid].append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in ppids or pid == root:
            found.append(pid)
            todo.extend(children.get(pid, []))
    return found


def postmaster_pid(port: int) -> int | None:
    """The postmaster of the cluster on `port`: a `postgres -D DIR` process whose
    DIR/postmaster.pid names that port (Debian's clusters and plain ones alike)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        raw = _read(f"/proc/{entry}/cmdline")
        if not raw:
            continue
        args = raw.split("\x00")
        if Path(args[0]).name not in ("postgres", "postmaster") or "-D" not in args:
            continue
        index = args.index("-D")
        if index + 1 >= len(args):
            continue
        lines = (_read(str(Path(args[index + 1]) / "postmaster.pid")) or "").splitlines()
        if len(lines) >= 4 and lines[3].strip() == str(port) and lines[0].strip() == entry:
            return int(entry)
    return None


def component_pids(settings: Settings) -> dict[str, list[int]]:
    """Every component's pids (with their children), as they run now."""
    ppids = _ppids()
    out: dict[str, list[int]] = {}
    for name in (*SERVICES, "kafka", "temporal", *HELPERS):
        text = _read(str(settings.state_dir / "pids" / f"{name}.pid"))
        if text and text.strip().isdigit() and int(text.strip()) in ppids:
            out[name] = _with_descendants(int(text.strip()), ppids)
    postmaster = postmaster_pid(settings.pg_port)
    if postmaster is not None:
        out["postgres"] = _with_descendants(postmaster, ppids)
    out["bench"] = [os.getpid()]
    return out


def main_pid(name: str, pids: list[int]) -> int:
    """The service's Python process among its component's pids (a wrapper may hold the pid
    file, with the service as its child)."""
    for pid in pids:
        if f"services.{name}" in (_read(f"/proc/{pid}/cmdline") or "").replace("\x00", " "):
            return pid
    return pids[0]


def memory(settings: Settings) -> dict[str, dict[str, int | None]]:
    """RSS (sum of VmRSS) and PSS (sum of Pss, None where unreadable) per component, KiB."""
    out: dict[str, dict[str, int | None]] = {}
    for name, pids in component_pids(settings).items():
        rss = [rss_kib(p) for p in pids]
        pss = [pss_kib(p) for p in pids]
        out[name] = {
            "processes": len(pids),
            "rss_kib": sum(r for r in rss if r is not None),
            "pss_kib": sum(p for p in pss if p is not None)
            if all(p is not None for p in pss)
            else None,
        }
    return out


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    text = _read("/proc/stat") or "cpu 0 0 0 0"
    values = [int(v) for v in text.splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


@dataclass
class Snapshot:
    at: float
    ticks: dict[str, dict[int, int]]
    threads: dict[str, dict[str, int]]
    rss: dict[str, int]
    machine: tuple[int, int]
    io: dict[str, dict[int, tuple[int, int]]] = field(default_factory=dict)


@dataclass
class Sampler:
    """Samples CPU and memory of every component once per `interval` in the background."""

    settings: Settings
    interval: float = 1.0
    snapshots: list[Snapshot] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None
    _pids: dict[str, list[int]] = field(default_factory=dict)
    _pids_at: float = 0.0

    def snapshot(self) -> Snapshot:
        now = time.monotonic()
        if now - self._pids_at > 5:  # Postgres backends come and go
            self._pids = component_pids(self.settings)
            self._pids_at = now
        ticks: dict[str, dict[int, int]] = {}
        threads: dict[str, dict[str, int]] = {}
        rss: dict[str, int] = {}
        io: dict[str, dict[int, tuple[int, int]]] = {}
        for name, pids in self._pids.items():
            ticks[name] = {}
            io[name] = {}
            total = 0
            for pid in pids:
                t = cpu_ticks(pid)
                if t is not None:
                    ticks[name][pid] = t
                    total += rss_kib(pid) or 0
                    counters = io_counters(pid)
                    if counters is not None:
                        io[name][pid] = counters
            rss[name] = total
            if name in SERVICES and pids:
                threads[name] = thread_ticks(main_pid(name, pids))
        snap = Snapshot(now, ticks, threads, rss, machine_ticks(), io)
        self.snapshots.append(snap)
        return snap

    async def _run(self) -> None:
        while True:
            self.snapshot()
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self.snapshot()
        self._task = asyncio.create_task(self._run(), name="bench-sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def recent_cpu(self, name: str) -> float | None:
        """`name`'s CPU (% of one core) between the last two samples."""
        if len(self.snapshots) < 2:
            return None
        after = self.snapshots[-1]
        before = next(
            (s for s in reversed(self.snapshots) if s.at <= after.at - 1.0), self.snapshots[0]
        )
        seconds = after.at - before.at
        if seconds <= 0 or name not in after.ticks:
            return None
        old = before.ticks.get(name, {})
        used = sum(t - old.get(pid, 0) for pid, t in after.ticks[name].items())
        return 100 * used / CLK_TCK / seconds

    def mark(self) -> float:
        """The start of a phase (now); `window(mark)` later gives its CPU and peak memory."""
        self.snapshot()
        return self.snapshots[-1].at

    def window(self, since: float) -> dict[str, Any]:
        end = self.snapshot()
        start = next((s for s in self.snapshots if s.at >= since), self.snapshots[0])
        seconds = max(end.at - start.at, 1e-6)
        cpu: dict[str, float] = {}
        for name, now_ticks in end.ticks.items():
            before = start.ticks.get(name, {})
            used = sum(t - before.get(pid, 0) for pid, t in now_ticks.items())
            cpu[name] = round(100 * used / CLK_TCK / seconds, 1)
        threads: dict[str, dict[str, float]] = {}
        for name, now_threads in end.threads.items():
            before_threads = start.threads.get(name, {})
            threads[name] = {
                thread: round(100 * (t - before_threads.get(thread, 0)) / CLK_TCK / seconds, 1)
                for thread, t in sorted(now_threads.items(), key=lambda kv: -kv[1])
                if t - before_threads.get(thread, 0) > 0
            }
        busy = end.machine[0] - start.machine[0]
        total = max(end.machine[1] - start.machine[1], 1)
        cores = os.cpu_count() or 1
        ours = sum(cpu.values())
        machine_busy = round(100 * cores * busy / total, 1)
        disk: dict[str, dict[str, float]] = {}
        for name, now_io in end.io.items():
            before_io = start.io.get(name, {})
            written = sum(b - before_io.get(pid, (0, 0))[0] for pid, (b, _) in now_io.items())
            calls = sum(c - before_io.get(pid, (0, 0))[1] for pid, (_, c) in now_io.items())
            if written > 0 or calls > 0:
                disk[name] = {
                    "mb_written_per_second": round(written / seconds / 1e6, 2),
                    "write_calls_per_second": round(calls / seconds, 1),
                }
        peaks: dict[str, int] = defaultdict(int)
        for snap in self.snapshots:
            if snap.at >= start.at:
                for name, kib in snap.rss.items():
                    peaks[name] = max(peaks[name], kib)
        return {
            "seconds": round(seconds, 1),
            "cpu_percent_of_one_core": cpu,
            "service_threads_cpu_percent": threads,
            "machine_busy_percent_of_one_core": machine_busy,
            "machine_cores": cores,
            "other_processes_cpu_percent": round(max(machine_busy - ours, 0.0), 1),
            "disk_writes": disk,
            "peak_rss_kib": dict(peaks),
        }
