"""The run's table (plain text, stdout) and the reading of its evidence: which stage limits
the pipeline, from the CPU of every process, the queues between stages, the legs of the
intake latency, Temporal's work per application and the services' profiles."""

from __future__ import annotations

from typing import Any

# What a growing queue means: the stage that drains it is slower than what feeds it.
QUEUE_STAGES = {
    "lag:intake.inbound": "intake storing Kafka submissions (consumer intake.inbound)",
    "lag:intake.lifecycle": "intake starting lifecycle workflows in Temporal "
    "(consumer intake.lifecycle)",
    "lag:intake.timeline": "intake recording timelines (consumer intake.timeline)",
    "lag:intake.register": "intake folding the register (consumer intake.register)",
    "lag:notifications.milestones": "notifications recording deliveries "
    "(consumer notifications.milestones)",
    "lag:payments.bank-answers": "payments settling bank answers (consumer payments.bank-answers)",
    "outbox:intake": "intake's outbox relay",
    "outbox:review": "review's outbox relay",
    "outbox:payments": "payments' outbox relay",
    "outbox:notifications": "notifications' outbox relay",
    "temporal:intake/workflow": "Temporal dispatching lifecycle workflow tasks to intake's worker",
    "temporal:review/workflow": "Temporal dispatching review workflow tasks to review's worker",
    "temporal:review/activity": "Temporal dispatching review activities to review's worker",
    "temporal:payments/workflow": "Temporal dispatching grant workflow tasks to payments' worker",
    "temporal:payments/activity": "Temporal dispatching payments activities to payments' worker",
    "temporal:intake/activity": "Temporal dispatching intake activities",
}

SERVICES = ("intake", "review", "payments", "notifications")
INFRA = ("kafka", "temporal", "postgres")


def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _ms(stats: dict[str, Any] | None, *keys: str) -> str:
    if not stats:
        return "-"
    return " / ".join(_num(stats.get(k), 0) for k in keys)


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _mib(kib: Any) -> str:
    return "-" if kib is None else f"{kib / 1024:,.0f}"


def limits(result: dict[str, Any]) -> list[str]:
    """Findings, most important first, each with the measurement it rests on."""
    findings: list[str] = []
    sizes = [s for s in result.get("sizes", []) if _get(s, "x_intake", "closed")]
    if not sizes:
        return ["no pipeline run completed: nothing to attribute"]
    size = sizes[-1]
    closed = size["x_intake"]["closed"]
    channel = "http" if "http" in closed else next(iter(closed))
    run = closed[channel]
    resources = run.get("resources", {})
    cpu: dict[str, float] = resources.get("cpu_percent_of_one_core", {})
    cores = resources.get("machine_cores", 1)
    busy = resources.get("machine_busy_percent_of_one_core", 0.0)
    other = resources.get("other_processes_cpu_percent", 0.0)
    stack = {k: v for k, v in cpu.items() if k != "bench"}
    ranked = sorted(stack.items(), key=lambda kv: -kv[1])
    top = ", ".join(f"{k} {v:.0f}%" for k, v in ranked[:5])
    findings.append(
        f"X_intake {channel} ({_num(run.get('per_second'), 2)}/s at c={run.get('concurrency')}, "
        f"{size['stored']:,} stored): machine {busy:.0f}% busy of {cores * 100}% "
        f"({cores} cores); busiest: {top}; bench client {cpu.get('bench', 0):.0f}%; "
        f"processes outside this stack {other:.0f}%."
    )
    if busy >= 0.9 * cores * 100:
        findings.append(
            "The machine's CPU was saturated during the closed loop: figures are a lower bound "
            + ("and other processes took a large share of it." if other > 20 else "for it.")
        )
    legs = run.get("legs_ms", {})
    wf, dl = _get(legs, "workflow_started", "p50"), _get(legs, "delivery_recorded", "p50")
    if wf and dl:
        slower = "workflow start" if wf > dl else "acknowledgement delivery"
        findings.append(
            f"Legs (p50 from submission): delivery recorded {dl:,.0f} ms, lifecycle workflow "
            f"started {wf:,.0f} ms: the {slower} decides the acknowledgement latency."
        )
    queues = resources.get("queues", {})
    grown = sorted(
        ((v["max"], k) for k, v in queues.items() if v.get("max", 0) >= 10), reverse=True
    )
    for depth, key in grown[:3]:
        findings.append(
            f"Queue {key} reached {int(depth)} (mean {queues[key]['mean']}): "
            f"{QUEUE_STAGES.get(key, key)} falls behind."
        )
    temporal_cpu = cpu.get("temporal", 0.0)
    service_max = max((cpu.get(s, 0.0) for s in SERVICES), default=0.0)
    if temporal_cpu > service_max:
        findings.append(
            f"Temporal's server uses more CPU ({temporal_cpu:.0f}%) than any service "
            f"(highest {service_max:.0f}%): the services mostly wait for it."
        )
    work = _get(size, "temporal_work", "x_intake_application", "total")
    if work:
        findings.append(
            "Temporal work per submitted application (lifecycle + review child, as it stood "
            f"after the run): {work.get('events')} history events, "
            f"{work.get('workflow tasks', 0)} workflow tasks, {work.get('activities', 0)} "
            f"activities, {work.get('timers', 0)} timers, "
            f"{work.get('signals sent', 0)} signals — against 2 workflow tasks for B_T's no-op."
        )
    disk = resources.get("disk_writes", {}).get("temporal")
    store = result.get("temporal_store", {})
    if disk:
        findings.append(
            f"Temporal's server wrote {disk['mb_written_per_second']} MB/s to disk in "
            f"{disk['write_calls_per_second']:,.0f} write calls/s during that run; its store is "
            f"SQLite ({store.get('journal', '?')}, {store.get('size_mb', '?')} MB at the end)."
        )
    log = result.get("temporal_log", {})
    if log.get("errors"):
        findings.append(
            f"Temporal's log had {log['errors']} errors during the run "
            f"({log.get('deadline_exceeded', 0)} 'deadline exceeded' / 'context canceled' on "
            "persistence): its store does not keep up."
        )
    one_by_one = _get(result, "baselines", "B_K", "send_and_wait_one_by_one", "per_second")
    pipelined = _get(result, "baselines", "B_K", "pipelined", "per_second")
    if one_by_one and pipelined:
        findings.append(
            f"Kafka is far from a limit: {pipelined:,.0f} msg/s pipelined ({one_by_one:,.0f} "
            "msg/s even when every send waits for its acknowledgement, linger 5 ms)."
        )
    profile = result.get("profile", {}).get("services", {})
    for service in SERVICES:
        p = profile.get(service, {})
        if p.get("samples"):
            packages = ", ".join(
                f"{x['what']} {x['percent']:.0f}%" for x in p.get("by_package_self", [])[:4]
            )
            hot = ", ".join(
                f"{x['what']} {x['percent']:.0f}%"
                for x in p.get("project_functions_inclusive", [])[:3]
            )
            findings.append(
                f"py-spy {service} ({p['samples']} busy samples): {packages}; "
                f"project code on the stack: {hot or '-'}."
            )
    return findings


def table(result: dict[str, Any]) -> str:
    lines: list[str] = []
    add = lines.append
    machine = result.get("machine", {})
    add(
        f"Barents Grants bench — {result.get('started_at')} — {machine.get('cores')} cores "
        f"({machine.get('cpu')}), {machine.get('memory_gib')} GiB — "
        f"{result.get('mode')} run, {_num(result.get('run_seconds'), 0)} s"
    )
    if result.get("note"):
        add(f"Note: {result['note']}")
    add("")
    base = result.get("baselines", {})
    bt, bk, bp = base.get("B_T", {}), base.get("B_K", {}), base.get("B_P", {})
    add("Raw ceilings (same servers, plain clients)                    rate        p50 / p99 ms")
    for label, data, unit in (
        (f"B_T no-op workflow (c={bt.get('concurrency')})", bt.get("noop_workflow"), "wf/s"),
        (
            f"B_T workflow + 1 no-op activity (c={bt.get('concurrency')})",
            bt.get("one_activity_workflow"),
            "wf/s",
        ),
        (
            f"B_K produce->consume, {bk.get('message_bytes')} B, pipelined",
            bk.get("pipelined"),
            "msg/s",
        ),
        (
            "B_K send_and_wait, one message at a time",
            bk.get("send_and_wait_one_by_one"),
            "msg/s",
        ),
        ("B_P insert+commit, c=1", bp.get("concurrency_1"), "tx/s"),
        *[
            (f"B_P insert+commit, c={k.split('_')[1]}", v, "tx/s")
            for k, v in bp.items()
            if k.startswith("concurrency_") and k != "concurrency_1"
        ],
    ):
        if not data:
            add(f"  {label:58s} {'skipped':>10}")
            continue
        add(
            f"  {label:58s} {_num(data.get('per_second')):>10} {unit:5s} "
            f"{_ms(data.get('latency_ms'), 'p50', 'p99')}"
        )
    add("")
    sizes = result.get("sizes", [])
    if sizes:
        head = "Pipeline, by applications already stored"
        add(f"{head:52s}" + "".join(f" {s.get('stored', 0):>24,}" for s in sizes))

        def row(label: str, values: list[str]) -> None:
            add(f"  {label:50s}" + "".join(f" {v:>24}" for v in values))

        for channel in ("http", "kafka"):
            if not any(_get(s, "x_intake", "closed", channel) for s in sizes):
                continue
            conc = next(
                (_get(s, "x_intake", "closed", channel, "concurrency") for s in sizes), None
            )
            row(
                f"X_intake {channel} closed loop c={conc} (apps/s)",
                [_num(_get(s, "x_intake", "closed", channel, "per_second"), 2) for s in sizes],
            )
            row(
                "  latency p50/p95/p99 ms",
                [
                    _ms(_get(s, "x_intake", "closed", channel, "latency_ms"), "p50", "p95", "p99")
                    for s in sizes
                ],
            )
            row(
                f"X_intake {channel} open loop at half (offered/s)",
                [
                    _num(_get(s, "x_intake", "half_rate_open", channel, "offered_per_second"), 2)
                    for s in sizes
                ],
            )
            row(
                "  latency p50/p99 ms (target p99 <= 1000)",
                [
                    _ms(_get(s, "x_intake", "half_rate_open", channel, "latency_ms"), "p50", "p99")
                    + (
                        " ok"
                        if _get(s, "x_intake", "half_rate_open", channel, "meets_target")
                        else " !"
                    )
                    if _get(s, "x_intake", "half_rate_open", channel)
                    else "-"
                    for s in sizes
                ],
            )
        life_c = next((_get(s, "x_life", "concurrency") for s in sizes if s.get("x_life")), None)
        row(
            f"X_life closed loop c={life_c} (lifecycles/s)",
            [_num(_get(s, "x_life", "per_second"), 2) for s in sizes],
        )
        row(
            "  lifecycle p50/p99 ms",
            [_ms(_get(s, "x_life", "latency_ms"), "p50", "p99") for s in sizes],
        )
        row(
            "  completed / started",
            [
                f"{_get(s, 'x_life', 'completed')}/{_get(s, 'x_life', 'started')}"
                if s.get("x_life")
                else "-"
                for s in sizes
            ],
        )
        for key, label in (
            ("x_intake_http_per_b_t_noop", "X_intake(http) / B_T no-op"),
            ("x_intake_http_per_b_t_activity", "X_intake(http) / B_T 1 activity"),
            ("x_intake_kafka_per_b_t_noop", "X_intake(kafka) / B_T no-op"),
            ("x_life_per_b_t_noop", "X_life / B_T no-op"),
            ("x_life_per_b_t_activity", "X_life / B_T 1 activity"),
        ):
            row(label, [_num(_get(s, "ratios", key), 3) for s in sizes])
        endpoints: list[str] = []
        for s in sizes:
            for name in _get(s, "reads", "endpoints") or {}:
                if name not in endpoints:
                    endpoints.append(name)
        if endpoints:
            add("  read endpoints, p99 ms (pipeline idle)")
            for name in endpoints:
                row(
                    f"  {name[:48]}",
                    [
                        _num(_get(s, "reads", "endpoints", name, "latency_ms", "p99"), 0)
                        for s in sizes
                    ],
                )
        add("")
    memory = result.get("memory", {})
    start = memory.get("at_start", {})
    peak = memory.get("peak_rss_kib", {})
    end = memory.get("at_end", {})
    if start:
        add("Memory, MiB                 RSS start    RSS peak     RSS end      PSS end   procs")
        for name in (*SERVICES, *INFRA, "bench"):
            if name not in start and name not in end:
                continue
            add(
                f"  {name:24s} {_mib(_get(start, name, 'rss_kib')):>10} "
                f"{_mib(peak.get(name)):>11} {_mib(_get(end, name, 'rss_kib')):>11} "
                f"{_mib(_get(end, name, 'pss_kib')):>12} {_num(_get(end, name, 'processes')):>7}"
            )
        add("")
    phases = result.get("phases", {})
    shown = [p for p in ("x_intake_http_closed", "x_intake_kafka_closed", "x_life") if p in phases]
    if shown:
        add("CPU, % of one core (last size)  " + "".join(f"{p:>24}" for p in shown))
        for name in (*SERVICES, *INFRA, "bench"):
            add(
                f"  {name:30s}"
                + "".join(
                    f"{_num(_get(phases[p], 'cpu_percent_of_one_core', name)):>24}" for p in shown
                )
            )
        add(
            f"  {'machine busy (all processes)':30s}"
            + "".join(
                f"{_num(_get(phases[p], 'machine_busy_percent_of_one_core')):>24}" for p in shown
            )
        )
        add(
            f"  {'  of which outside this stack':30s}"
            + "".join(f"{_num(_get(phases[p], 'other_processes_cpu_percent')):>24}" for p in shown)
        )
        written = "mb_written_per_second"
        for name in INFRA:
            if any(_get(phases[p], "disk_writes", name) for p in shown):
                add(
                    f"  {'disk MB/s written: ' + name:30s}"
                    + "".join(
                        f"{_num(_get(phases[p], 'disk_writes', name, written), 2):>24}"
                        for p in shown
                    )
                )
        add("")
    add("What limits the pipeline now (evidence)")
    for finding in result.get("limits", []):
        add(f"  - {finding}")
    add("")
    add(f"JSON: {result.get('output')}")
    return "\n".join(lines)
