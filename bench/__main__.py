"""`./dev bench [options]` (or `python -m bench`): measure the running stack, print the table,
write the JSON. See bench/__init__.py for what is measured and README.md ("Performance")."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench import histories, intake, life, procs, profiling, raw, reads, report, seed, stack
from bench.common import RESULTS, Budget, Progress
from bench.probe import QueueProbe
from bench.record import Recorder
from shared.config import Settings
from shared.temporal import connect

FULL = {
    "sizes": "1000,10000,100000",
    "duration": 30.0,
    "life_duration": 60.0,
    "raw_duration": 15.0,
    "concurrency": 32,
    "life_concurrency": 16,
    "raw_concurrency": 32,
    "reads": 200,
    "profile_seconds": 20.0,
    "settle": 120.0,
    "time_limit": 5400.0,
}
QUICK = {
    "sizes": "1000,10000",
    "duration": 8.0,
    "life_duration": 20.0,
    "raw_duration": 5.0,
    "concurrency": 16,
    "life_concurrency": 8,
    "raw_concurrency": 16,
    "reads": 40,
    "profile_seconds": 8.0,
    "settle": 45.0,
    "time_limit": 1200.0,
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="./dev bench",
        description="Measure the running stack (start it first with ./dev up): raw ceilings of "
        "Temporal, Kafka and Postgres, intake and full-lifecycle throughput and latency at "
        "several numbers of stored applications, read-endpoint latency, memory and CPU of "
        "every process, and a py-spy profile of the services. Prints a table and writes JSON.",
    )
    parser.add_argument("--quick", action="store_true", help="short runs, sizes 1k and 10k")
    parser.add_argument("--sizes", help=f"stored applications, comma-separated ({FULL['sizes']})")
    parser.add_argument(
        "--duration", type=float, help="seconds of each X_intake run (closed, then open)"
    )
    parser.add_argument("--life-duration", type=float, help="seconds of the X_life run")
    parser.add_argument("--raw-duration", type=float, help="seconds of each raw-ceiling run")
    parser.add_argument("--concurrency", type=int, help="X_intake closed-loop submitters")
    parser.add_argument("--life-concurrency", type=int, help="X_life concurrent lifecycles")
    parser.add_argument("--raw-concurrency", type=int, help="B_T and B_P concurrency")
    parser.add_argument("--reads", type=int, help="requests per read endpoint and size")
    parser.add_argument("--profile-seconds", type=float, help="py-spy sampling time")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profile")
    parser.add_argument(
        "--settle",
        type=float,
        help="seconds to wait at most, before each phase, for the pipeline to be idle",
    )
    parser.add_argument("--channels", default="http,kafka", help="X_intake channels (http,kafka)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="seconds an application may take to be "
        "acknowledged (and each lifecycle step) before it counts as failed",
    )
    parser.add_argument(
        "--max-apps", type=int, default=20000, help="most applications any one run submits"
    )
    parser.add_argument("--time-limit", type=float, help="seconds for the whole run")
    parser.add_argument("--note", default="", help="recorded with the results (e.g. conditions)")
    parser.add_argument(
        "--output", type=Path, default=RESULTS / "latest.json", help="where the JSON goes"
    )
    parser.add_argument(
        "--cleanup",
        action="store_true",
        help="remove the seeded applications (external_ref bench-seed-...) and exit",
    )
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.size_list = [int(s) for s in str(args.sizes).split(",") if s.strip()]
    args.channel_list = [c for c in args.channels.split(",") if c in ("http", "kafka")]
    return args


def _temporal_log(settings: Settings) -> Path:
    return settings.state_dir / "logs" / "temporal.log"


def _log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _log_errors(path: Path, since: int) -> dict[str, int]:
    try:
        with path.open("rb") as f:
            f.seek(since)
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return {}
    lines = text.splitlines()
    return {
        "errors": sum("level=ERROR" in line for line in lines),
        "warnings": sum("level=WARN" in line for line in lines),
        "deadline_exceeded": sum(
            "deadline exceeded" in line or "context canceled" in line for line in lines
        ),
    }


def _temporal_store(settings: Settings) -> dict[str, Any]:
    """The dev server's SQLite file (./dev starts it with --db-filename under the state
    directory): its size, and whether it runs in WAL mode (a lasting -wal file) or with a
    rollback journal (no -wal file; a -journal file during each write transaction)."""
    directory = settings.state_dir / "temporal"
    databases = sorted(directory.glob("*.db")) if directory.is_dir() else []
    if not databases:
        return {}
    db = databases[0]
    wal = db.with_name(db.name + "-wal")
    return {
        "file": str(db),
        "size_mb": round(db.stat().st_size / 1e6, 1),
        "journal": "wal" if wal.exists() else "rollback journal (no -wal file)",
    }


def _ratios(entry: dict[str, Any], baselines: dict[str, Any]) -> dict[str, float | None]:
    noop = baselines.get("B_T", {}).get("noop_workflow", {}).get("per_second")
    activity = baselines.get("B_T", {}).get("one_activity_workflow", {}).get("per_second")
    out: dict[str, float | None] = {}
    values = {
        "x_intake_http": entry.get("x_intake", {})
        .get("closed", {})
        .get("http", {})
        .get("per_second"),
        "x_intake_kafka": entry.get("x_intake", {})
        .get("closed", {})
        .get("kafka", {})
        .get("per_second"),
        "x_life": entry.get("x_life", {}).get("per_second"),
    }
    for key, value in values.items():
        for suffix, base in (("noop", noop), ("activity", activity)):
            out[f"{key}_per_b_t_{suffix}"] = (
                round(value / base, 4) if value is not None and base else None
            )
    return out


async def profile_under_load(
    settings: Settings,
    progress: Progress,
    recorder: Recorder,
    temporal: Any,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """An extra X_intake HTTP closed loop (not counted) while py-spy samples the services."""
    pids = {
        name: procs.main_pid(name, pids)
        for name, pids in procs.component_pids(settings).items()
        if name in procs.SERVICES and pids
    }
    tracker = intake.AckTracker(settings, temporal)
    submitter = intake.Submitter(settings, tracker, args.timeout)
    await tracker.start()
    await submitter.start()
    progress(f"profile: py-spy on {', '.join(pids)} for {args.profile_seconds:.0f}s under load")
    try:
        async with recorder.phase("profile_load") as phase:
            load = asyncio.create_task(
                intake.closed_loop(
                    submitter,
                    "http",
                    concurrency=args.concurrency,
                    duration=args.profile_seconds + 4,
                    max_applications=args.max_apps,
                )
            )
            await asyncio.sleep(2)
            services = await profiling.record(pids, args.profile_seconds)
            await load
    finally:
        await submitter.stop()
        await tracker.stop()
    return {
        "under": f"X_intake http closed loop, c={args.concurrency}",
        "services": services,
        "resources": phase,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    progress = Progress()
    settings = stack.load_settings()
    budget = Budget(args.time_limit)
    await stack.check_up(settings)
    progress(f"stack: {stack.addresses(settings)}")
    result: dict[str, Any] = {
        "started_at": stack.now_utc(),
        "mode": "quick" if args.quick else "full",
        "note": args.note,
        "machine": stack.machine(),
        "git": stack.git_state(),
        "services_started_at": stack.services_started(settings),
        "services_code": stack.services_code(settings),
        "stack": stack.addresses(settings),
        "deadlines_seconds": await stack.deadlines(settings),
        "args": {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in vars(args).items()
            if k not in ("size_list", "channel_list")
        },
        "baselines": {},
        "sizes": [],
        "output": str(args.output),
    }
    deadline = result["deadlines_seconds"].get("agreement_acceptance")
    if isinstance(deadline, int | float) and deadline > 600:
        progress(
            "note: the stack runs with long deadlines; X_life does not depend on them, but the "
            "issue asks for short ones (GRANTS_FUNDING_CONFIG=tests/fixtures/funding-fast.toml)"
        )
    sampler = procs.Sampler(settings)
    sampler.start()
    temporal = await connect(settings)
    probe = QueueProbe(settings, temporal)
    await probe.start()
    recorder = Recorder(sampler, probe, args.settle, progress)
    log_path = _temporal_log(settings)
    log_start = _log_size(log_path)
    result["memory"] = {"at_start": procs.memory(settings)}
    began = time.perf_counter()
    try:
        raw_needed = 6 * args.raw_duration + 30
        if budget.allows(raw_needed):
            async with recorder.phase("b_p") as phase:
                result["baselines"]["B_P"] = await raw.postgres_ceiling(
                    settings,
                    progress,
                    concurrency=args.raw_concurrency,
                    duration=args.raw_duration,
                    max_operations=1_000_000,
                )
            result["baselines"]["B_P"]["resources"] = phase
            async with recorder.phase("b_k") as phase:
                result["baselines"]["B_K"] = await raw.kafka_ceiling(
                    settings, progress, duration=args.raw_duration, max_messages=1_000_000
                )
            result["baselines"]["B_K"]["resources"] = phase
            async with recorder.phase("b_t") as phase:
                result["baselines"]["B_T"] = await raw.temporal_ceiling(
                    settings,
                    progress,
                    concurrency=args.raw_concurrency,
                    duration=args.raw_duration,
                    warmup=min(3.0, args.raw_duration / 3),
                    max_operations=1_000_000,
                )
            result["baselines"]["B_T"]["resources"] = phase
        else:
            result["baselines"]["skipped"] = "time limit"

        per_size = (
            4 * args.duration * len(args.channel_list) + args.life_duration + 2 * args.timeout
        )
        for index, size in enumerate(args.size_list):
            if not budget.allows(per_size / 2):
                progress(f"size {size}: skipped (time limit {args.time_limit:.0f}s)")
                result["sizes"].append({"stored": size, "skipped": "time limit"})
                continue
            progress(f"--- {size:,} stored applications")
            entry: dict[str, Any] = {"stored_target": size}
            entry["seed"] = await seed.seed_to(settings, size, progress)
            entry["stored"] = entry["seed"]["after"]["applications"]
            # Settled first, like every phase: the reads are meant with the pipeline idle, and
            # the previous size's lifecycles still fire their short deadlines for a while.
            async with recorder.phase("reads") as phase:
                entry["reads"] = await reads.measure(
                    settings, progress, temporal, requests=args.reads, concurrency=4
                )
            entry["reads"]["resources"] = phase
            entry["x_intake"] = await intake.measure(
                settings,
                progress,
                temporal,
                channels=args.channel_list,
                concurrency=args.concurrency,
                duration=args.duration,
                warmup=min(3.0, args.duration / 4) if index == 0 else 0.0,
                ack_timeout=args.timeout,
                max_applications=args.max_apps,
                on_phase=recorder.phase,
            )
            if index == 0 and not args.no_profile and budget.allows(args.profile_seconds + 60):
                result["profile"] = await profile_under_load(
                    settings, progress, recorder, temporal, args
                )
            if budget.allows(args.life_duration + 30):
                entry["x_life"] = await life.measure(
                    settings,
                    progress,
                    concurrency=args.life_concurrency,
                    duration=args.life_duration,
                    step_timeout=args.timeout,
                    max_lifecycles=args.max_apps,
                    on_phase=recorder.phase,
                )
            else:
                entry["x_life"] = {"skipped": "time limit"}
            # After X_life: the intake sample's review has fired its timers by now.
            sample = entry["x_intake"]["closed"].get("http", {}).get("sample_application")
            entry["temporal_work"] = {
                "x_intake_application": await histories.per_application(temporal, sample),
                "x_life_application": await histories.per_application(
                    temporal, entry["x_life"].get("sample_application")
                ),
            }
            entry["ratios"] = _ratios(entry, result["baselines"])
            result["sizes"].append(entry)
    finally:
        result["run_seconds"] = round(time.perf_counter() - began, 1)
        result["finished_at"] = stack.now_utc()
        result["memory"]["at_end"] = procs.memory(settings)
        result["memory"]["peak_rss_kib"] = sampler.window(0.0)["peak_rss_kib"]
        result["temporal_log"] = _log_errors(log_path, log_start)
        result["temporal_store"] = _temporal_store(settings)
        result["phases"] = {
            name: {k: v for k, v in phase.items() if k != "queues"}
            for name, phase in recorder.phases.items()
        }
        await probe.stop()
        await sampler.stop()
    result["limits"] = report.limits(result)
    return result


async def cleanup() -> None:
    settings = stack.load_settings()
    removed = await seed.cleanup(settings)
    print(
        f"removed {removed['applications']} seeded applications and "
        f"{removed['timeline_rows']} timeline rows"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.cleanup:
        asyncio.run(cleanup())
        return 0
    try:
        result = asyncio.run(run(args))
    except stack.StackDown as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    print(report.table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
