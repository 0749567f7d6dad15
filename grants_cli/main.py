"""The `grants` command: typer commands over the services' HTTP APIs, Temporal's visibility
store and Kafka. Tables and messages go through rich; data to stdout, progress and errors to
stderr; every failure is one red line and exit status 1."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, ParamSpec, TypeVar
from uuid import UUID

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from grants_cli import render
from grants_cli.bank import BANK, answer_envelope, publish_answer
from grants_cli.client import Api, Auth, CliError, CliSettings, refusal
from grants_cli.kafka_tail import EventLine, TailFilter, tail
from grants_cli.parsing import (
    STATUSES,
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
from grants_cli.search import from_assignments, search
from shared.topics import APPLICATION_EVENTS, all_topics

P = ParamSpec("P")
T = TypeVar("T")

app = typer.Typer(
    name="grants",
    help="Barents Grants from the command line: submit, follow, act, read the money, tail "
    "the events. Local development mints tokens (--as ROLE:USER); production passes a real "
    "one in GRANTS_TOKEN.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bank_app = typer.Typer(
    help="Act as the bank/ERP (local development): answer payment requests on Kafka.",
    no_args_is_help=True,
)
app.add_typer(bank_app, name="bank")

AsOption = Annotated[
    str | None,
    typer.Option(
        "--as",
        metavar="ROLE:USER",
        help="Act as this identity with a locally minted token, e.g. advisor:kari.nordmann, "
        "head_of_section:ingrid.solberg, applicant:981234765.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ApplicationArg = Annotated[
    str, typer.Argument(metavar="ID", help="The application id (or its workflow id).")
]


# --- output and errors ---------------------------------------------------------------------


def _width(stream: Any) -> int | None:
    """The terminal's width; when piped (or under a test runner) wide enough for ids."""
    if getattr(stream, "isatty", lambda: False)():
        return None
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() else 200


def out() -> Console:
    return Console(width=_width(sys.stdout), highlight=False, soft_wrap=False)


def err() -> Console:
    return Console(stderr=True, width=_width(sys.stderr), highlight=False)


def fail(message: str) -> typer.Exit:
    err().print(f"[bold red]error:[/bold red] [red]{escape(message)}[/red]")
    return typer.Exit(1)


def friendly(fn: Callable[P, T]) -> Callable[P, T]:
    """Turn the CLI's own failures into a red line and exit status 1 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except (CliError, BadInput) as exc:
            raise fail(str(exc)) from None
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise fail(problems) from None

    return wrapper


def settings() -> CliSettings:
    try:
        return CliSettings()
    except ValidationError as exc:
        raise CliError(f"bad GRANTS_* setting: {exc.errors()[0]['msg']}") from exc


def identity(ctx: typer.Context, as_: str | None) -> Identity | None:
    """The command's --as, else the one given before the command, else none."""
    if as_:
        return parse_identity(as_)
    found: Identity | None = ctx.obj if isinstance(ctx.obj, Identity) else None
    return found


def api(ctx: typer.Context, as_: str | None) -> Api:
    config = settings()
    return Api(config, Auth(config, identity(ctx, as_)))


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))


@app.callback()
def main(ctx: typer.Context, as_: AsOption = None) -> None:
    """Barents Grants from the command line."""
    # The Kafka client logs every failed connection attempt; the CLI says it once, plainly.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        ctx.obj = parse_identity(as_) if as_ else None
    except BadInput as exc:
        raise typer.BadParameter(str(exc), param_hint="--as") from None


# --- submitting ----------------------------------------------------------------------------


@app.command()
@friendly
def submit(
    ctx: typer.Context,
    paths: Annotated[
        list[Path],
        typer.Argument(
            metavar="FILE...", help="Application documents (JSON), or directories of them."
        ),
    ],
    fresh: Annotated[
        bool,
        typer.Option(
            "--fresh-ref",
            help="Give every document a unique external_ref, so a sample is a new application.",
        ),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print only the application ids.")
    ] = False,
    as_: AsOption = None,
) -> None:
    """Submit applications from JSON files or directories (a progress bar for many).

    Prints one line per document: application id, created/existing, external_ref, file. An
    operator submits for any organisation; --as applicant:ORGNR for its own only."""
    files = collect_files(paths)
    results: list[tuple[Path, str, str, str]] = []
    failures: list[tuple[Path, str]] = []
    with api(ctx, as_) as client:

        def one(path: Path) -> None:
            try:
                document = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                failures.append((path, f"not a JSON document ({type(exc).__name__})"))
                return
            if not isinstance(document, dict):
                failures.append((path, "not a JSON object"))
                return
            if fresh:
                document["external_ref"] = fresh_ref(document.get("external_ref"))
            response = client.submit(document)
            if response.status_code in (200, 201):
                body = response.json()
                outcome = "created" if response.status_code == 201 else "existing"
                results.append((path, body["application_id"], outcome, body["external_ref"]))
            else:
                failures.append(
                    (path, refusal("intake", response, client.auth.operator(), client.auth))
                )

        if len(files) == 1:
            one(files[0])
        else:
            progress = Progress(
                TextColumn("submitting"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[name]}"),
                TimeElapsedColumn(),
                console=err(),
            )
            with progress:
                task = progress.add_task("submit", total=len(files), name="")
                for path in files:
                    progress.update(task, name=path.name)
                    one(path)
                    progress.advance(task)
    for path, application_id, outcome, external_ref in results:
        typer.echo(
            application_id if quiet else f"{application_id}  {outcome}  {external_ref}  {path}"
        )
    console = err()
    for path, reason in failures:
        console.print(f"[red]{escape(str(path))}: {escape(reason)}[/red]")
    if len(files) > 1 or failures:
        created = sum(1 for r in results if r[2] == "created")
        console.print(
            f"{len(results)} submitted ({created} new, {len(results) - created} existing), "
            f"{len(failures)} failed"
        )
    if failures:
        raise typer.Exit(1)


# --- following -----------------------------------------------------------------------------


@app.command()
@friendly
def status(
    ctx: typer.Context,
    application: ApplicationArg,
    wait_for: Annotated[
        list[str] | None,
        typer.Option(
            "--wait-for",
            metavar="STATUS",
            help="Wait until the application has this status (repeatable: any of them).",
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option(help="Seconds --wait-for waits before giving up.")
    ] = 60.0,
    json_: JsonOption = False,
    as_: AsOption = None,
) -> None:
    """An application's status, advisor, deciding role and next deadline."""
    app_id = parse_application_id(application)
    for wanted in wait_for or ():
        if wanted not in STATUSES:
            raise BadInput(f"unknown status {wanted!r}; one of {', '.join(STATUSES)}")
    deadline = time.monotonic() + timeout
    with api(ctx, as_) as client:
        while True:
            fields = render.status_fields(client.application(app_id), client.review_state(app_id))
            if not wait_for or fields["status"] in wait_for:
                break
            if time.monotonic() >= deadline:
                raise CliError(
                    f"still {fields['status']} after {timeout:g}s "
                    f"(waited for {' or '.join(wait_for)})"
                )
            time.sleep(0.5)
    if json_:
        print_json(fields)
    else:
        out().print(render.status_table(fields))


@app.command()
@friendly
def timeline(
    ctx: typer.Context, application: ApplicationArg, json_: JsonOption = False, as_: AsOption = None
) -> None:
    """Every event of an application, in order: time, type, actor, source, status."""
    app_id = parse_application_id(application)
    with api(ctx, as_) as client:
        rows = render.timeline_rows(client.timeline(app_id))
    if json_:
        print_json(rows)
    else:
        out().print(render.timeline_table(rows))


@app.command("list")
@friendly
def list_(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    line: Annotated[str | None, typer.Option(help="Only this funding line.")] = None,
    advisor: Annotated[str | None, typer.Option(help="Only this advisor's.")] = None,
    open_: Annotated[bool, typer.Option("--open", help="Only running lifecycles.")] = False,
    query: Annotated[
        str | None,
        typer.Option(help="More visibility query, e.g. 'RequestedAmount > 100000'."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    source: Annotated[
        Literal["temporal", "review"],
        typer.Option(
            help="temporal: search attributes (any status); review: the review service's "
            "assignments (open cases and decisions)."
        ),
    ] = "temporal",
    json_: JsonOption = False,
    as_: AsOption = None,
) -> None:
    """List and search applications by status, funding line and advisor, the newest first."""
    if source == "temporal":
        q = visibility_query(
            status=status, line=line, advisor=advisor, open_only=open_, extra=query
        )
        rows = asyncio.run(search(settings(), q, limit))
        title, caption = f"{len(rows)} applications", q
    else:
        if query or open_:
            raise BadInput("--query and --open search Temporal: use --source temporal")
        visibility_query(status=status, line=line, advisor=advisor)  # checks the values
        with api(ctx, as_) as client:
            found = client.assignments(advisor=advisor, status=status, limit=500)
        rows = from_assignments(found, line, limit)
        title, caption = f"{len(rows)} assignments", "review service: GET /assignments"
    if json_:
        print_json(rows)
    else:
        out().print(render.applications_table(rows, title=title, caption=caption))


# --- acting (local development) ------------------------------------------------------------


def _assigned_advisor(client: Api, app_id: UUID) -> str:
    state = client.review_state(app_id)
    if state is None or not state.get("advisor"):
        shown = state["status"] if state else "not in review"
        raise CliError(f"no advisor is assigned ({shown}); name one with --advisor")
    advisor: str = state["advisor"]
    return advisor


def _show_result(result: dict[str, Any], json_: bool) -> None:
    if json_:
        print_json(result)
    else:
        out().print(render.action_result(result))


@app.command()
@friendly
def review(
    ctx: typer.Context,
    application: ApplicationArg,
    scores: Annotated[
        str,
        typer.Option(
            help="Five scores 1-5: cooperation, relevance, feasibility, budget_realism, "
            "people_to_people (e.g. 5,4,4,3,5, or named: cooperation=5,...).",
        ),
    ],
    comment: Annotated[str, typer.Option(help="The advisor's assessment.")],
    recommend: Annotated[Literal["approve", "reject"], typer.Option(help="The recommendation.")],
    advisor: Annotated[
        str | None, typer.Option(help="The advisor (default: the one assigned).")
    ] = None,
    amount: Annotated[str | None, typer.Option(help="A reduced amount to recommend.")] = None,
    json_: JsonOption = False,
    as_: AsOption = None,
) -> None:
    """Submit the advisor's review (as that advisor)."""
    app_id = parse_application_id(application)
    body: dict[str, Any] = {
        "scores": parse_scores(scores),
        "comment": comment,
        "recommendation": recommend,
    }
    if amount is not None:
        body["recommended_amount"] = parse_amount(amount)
    with api(ctx, as_) as client:
        body["advisor"] = advisor or _assigned_advisor(client, app_id)
        actor = Identity(role="advisor", sub=body["advisor"])
        _show_result(client.submit_review(app_id, body, actor), json_)


@app.command("request-info")
@friendly
def request_info(
    ctx: typer.Context,
    application: ApplicationArg,
    question: Annotated[str, typer.Option(help="What the applicant must answer.")],
    advisor: Annotated[
        str | None, typer.Option(help="The advisor (default: the one assigned).")
    ] = None,
    json_: JsonOption = False,
    as_: AsOption = None,
) -> None:
    """Ask the applicant for information (as the advisor); they have the configured time."""
    app_id = parse_application_id(application)
    with api(ctx, as_) as client:
        who = advisor or _assigned_advisor(client, app_id)
        actor = Identity(role="advisor", sub=who)
        result = client.request_information(app_id, {"advisor": who, "question": question}, actor)
    _show_result(result, json_)


def _roster_decider(role: str) -> str | None:
    """The head of section or director named in the local funding configuration."""
    if role not in ("head_of_section", "director"):
        return None
    try:
        from shared.funding import get_funding_config

        roster = get_funding_config().roster
    except Exception:
        return None
    name: str = roster.head_of_section if role == "head_of_section" else roster.director
    return name


@app.command()
@friendly
def decide(
    ctx: typer.Context,
    application: ApplicationArg,
    approve: Annotated[
        bool, typer.Option("--approve/--reject", help="Approve or reject.", show_default=False)
    ],
    role: Annotated[
        Literal["head_of_section", "director", "board"] | None,
        typer.Option(help="The deciding role (default: the one the review names)."),
    ] = None,
    decider: Annotated[
        str | None,
        typer.Option(help="Who decides (default: the roster's head of section or director)."),
    ] = None,
    amount: Annotated[str | None, typer.Option(help="A reduced amount to grant.")] = None,
    comment: Annotated[str, typer.Option(help="The decision's comment.")] = "",
    json_: JsonOption = False,
    as_: AsOption = None,
) -> None:
    """Decide an application (as the decider): approve, possibly reduced, or reject."""
    app_id = parse_application_id(application)
    with api(ctx, as_) as client:
        if role is None:
            state = client.review_state(app_id)
            if state is None or not state.get("decider_role"):
                raise CliError("the review names no deciding role yet; give --role")
            role = state["decider_role"]
        assert role is not None
        who = decider or _roster_decider(role)
        if not who:
            raise CliError(f"name the {role.replace('_', ' ')} with --decider")
        body: dict[str, Any] = {
            "decider": who,
            "role": role,
            "outcome": "approve" if approve else "reject",
            "comment": comment,
        }
        if amount is not None:
            body["amount"] = parse_amount(amount)
        result = client.decide(app_id, body, Identity(role=role, sub=who))
    _show_result(result, json_)
    if not json_ and result.get("status") == "awaiting_decision":
        err().print("[yellow]not decided: reduce the amount (--amount) or reject[/yellow]")


@app.command()
@friendly
def accept(
    ctx: typer.Context,
    application: ApplicationArg,
    by: Annotated[str, typer.Option("--by", help="Who accepts for the applicant (by name).")],
    json_: JsonOption = False,
    as_: AsOption = None,
) -> None:
    """Accept the grant agreement as the applicant (local development); the advance follows.

    The token is the applicant organisation's own (applicant:ORGNR of the application)."""
    app_id = parse_application_id(application)
    with api(ctx, as_) as client:
        org = str(client.application(app_id)["document"]["applicant"]["org_number"])
        actor = Identity(role="applicant", sub=f"contact-{org}", org=org)
        result = client.accept_agreement(app_id, by, actor)
    _show_result(result, json_)


# --- the bank (local development) ----------------------------------------------------------


def _answer(
    ctx: typer.Context,
    reference: str,
    attempt: int | None,
    outcome: Literal["confirmed", "rejected"],
    reason: str | None,
    wait: float,
    as_: str | None,
) -> None:
    config = settings()
    auth = Auth(config, identity(ctx, as_))
    with Api(config, auth) as client:
        payment = client.payment(reference)
        attempts: list[dict[str, Any]] = payment.get("attempts") or []
        number = attempt or max((a["attempt"] for a in attempts), default=1)
        current = next((a for a in attempts if a["attempt"] == number), None)
        if current is None:
            raise CliError(f"{reference} has no attempt {number}")
        if current["status"] != "requested":
            err().print(
                f"[yellow]note: attempt {number} is already {current['status']}; "
                "answering again changes nothing[/yellow]"
            )
        envelope = answer_envelope(reference, number, outcome, reason)
        asyncio.run(publish_answer(config, envelope, auth.token(BANK)))
        err().print(f"sent {outcome} for {reference} attempt {number}")
        if wait <= 0:
            return
        deadline = time.monotonic() + wait
        while True:
            shown = client.payment(reference)
            seen: dict[str, Any] = next(
                (a for a in shown["attempts"] if a["attempt"] == number), {}
            )
            if seen.get("status") not in (None, "requested"):
                break
            if time.monotonic() >= deadline:
                raise CliError(
                    f"payments has not recorded the answer after {wait:g}s: see "
                    "`grants tail --topic grants.bank.payment-answers.dlq --from-beginning`"
                )
            time.sleep(0.5)
    text = Text(f"{reference} attempt {number}: ")
    text.append(str(seen.get("status")), style=render.status_style(seen.get("status")))
    text.append(f"  (payment {shown['status']})")
    out().print(text)


WaitOption = Annotated[
    float,
    typer.Option(help="Seconds to wait for payments to record the answer (0: do not wait)."),
]
AttemptOption = Annotated[
    int | None, typer.Option(min=1, help="The attempt answered (default: the latest).")
]


@bank_app.command("confirm")
@friendly
def bank_confirm(
    ctx: typer.Context,
    reference: Annotated[str, typer.Argument(help="The payment reference, e.g. BG-…-A1.")],
    attempt: AttemptOption = None,
    wait: WaitOption = 20.0,
    as_: AsOption = None,
) -> None:
    """Confirm a payment as the bank (bank.payment_answer on grants.bank.payment-answers)."""
    _answer(ctx, reference, attempt, "confirmed", None, wait, as_)


@bank_app.command("reject")
@friendly
def bank_reject(
    ctx: typer.Context,
    reference: Annotated[str, typer.Argument(help="The payment reference, e.g. BG-…-A1.")],
    reason: Annotated[str, typer.Option(help="Why the bank rejected it.")],
    attempt: AttemptOption = None,
    wait: WaitOption = 20.0,
    as_: AsOption = None,
) -> None:
    """Reject a payment as the bank; finance corrects the bank details, then attempt 2."""
    _answer(ctx, reference, attempt, "rejected", reason, wait, as_)


# --- money ---------------------------------------------------------------------------------


@app.command()
@friendly
def payments(
    ctx: typer.Context,
    application: Annotated[
        str | None, typer.Option("--application", help="Only this application's.")
    ] = None,
    status: Annotated[Literal["requested", "confirmed", "rejected"] | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    json_: JsonOption = False,
    as_: AsOption = None,
) -> None:
    """Payment attempts, the most recently requested first."""
    app_id = parse_application_id(application) if application else None
    with api(ctx, as_) as client:
        rows = client.payments(application_id=app_id, status=status, limit=limit)
    for row in rows:
        row.pop("payee_name", None)  # finance reads the payee in its own system
    if json_:
        print_json(rows)
    else:
        out().print(render.payments_table(rows))


@app.command()
@friendly
def ledger(
    ctx: typer.Context,
    year: Annotated[int | None, typer.Option(min=2000, max=2100, help="Only this year.")] = None,
    json_: JsonOption = False,
    as_: AsOption = None,
) -> None:
    """The budget ledgers: budget, committed, disbursed, released and available per line."""
    with api(ctx, as_) as client:
        rows = client.ledgers(year)
    if json_:
        print_json(rows)
    else:
        out().print(render.ledger_table(rows))


# --- events --------------------------------------------------------------------------------


@app.command("tail")
@friendly
def tail_(
    topic: Annotated[
        list[str] | None,
        typer.Option(help=f"Topics to follow (repeatable; default {APPLICATION_EVENTS})."),
    ] = None,
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start at the oldest event kept.")
    ] = False,
    type_: Annotated[
        list[str] | None,
        typer.Option("--type", metavar="PREFIX", help="Only event types starting so."),
    ] = None,
    application: Annotated[str | None, typer.Option(help="Only this application's events.")] = None,
    max_: Annotated[
        int | None, typer.Option("--max", min=1, help="Stop after this many events.")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(min=0, help="Stop after this many seconds.")
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Follow the events on Kafka, one line each: time, type, application, actor.

    Never payloads (they carry personal data). Ctrl-C stops; --max and --timeout bound it."""
    topics = topic or [APPLICATION_EVENTS]
    known = all_topics()
    for name in topics:
        if name not in known:
            raise BadInput(f"unknown topic {name!r}; one of {', '.join(known)}")
    where = TailFilter(
        type_prefixes=tuple(type_ or ()),
        application_id=str(parse_application_id(application)) if application else None,
    )
    console = out()

    def emit(line: EventLine) -> None:
        if json_:
            typer.echo(json.dumps(line.as_dict(), ensure_ascii=False))
            return
        text = Text(f"{render.when(line.time)}  ")
        text.append(f"{line.type:<30}", style="bold")
        text.append(f"  {line.application_id or '—':<36}  {line.actor or '—'}")
        if line.reference:
            text.append(f"  {line.reference}", style="cyan")
        if len(topics) > 1:
            text.append(f"  [{line.topic}]", style="dim")
        console.print(text, soft_wrap=True)

    start = "from the beginning" if from_beginning else "from now"

    def ready() -> None:
        err().print(f"[dim]following {', '.join(topics)} {start} (Ctrl-C stops)[/dim]")

    try:
        shown = asyncio.run(
            tail(
                settings(),
                topics,
                from_beginning=from_beginning,
                where=where,
                emit=emit,
                max_events=max_,
                seconds=timeout,
                on_ready=ready,
            )
        )
    except KeyboardInterrupt:
        err().print("[dim]stopped[/dim]")
        return
    err().print(f"[dim]{shown} events[/dim]")


@app.command()
@friendly
def token(ctx: typer.Context, as_: AsOption = None) -> None:
    """Print a locally minted bearer token for --as ROLE:USER (local development)."""
    who = identity(ctx, as_)
    if who is None:
        raise BadInput("name the identity: grants token --as ROLE:USER")
    config = settings()
    typer.echo(Auth(config, who).token(who))


if __name__ == "__main__":  # pragma: no cover
    app()
