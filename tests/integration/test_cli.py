"""The `grants` command-line tool against the real stack: a sample from submission to
decision, search, the ledger, the bank, the Kafka tail, refusals, and a directory of samples
with a progress bar."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from typer.testing import CliRunner, Result

from grants_cli.main import app
from shared.config import REPO_ROOT, Settings
from tests.conftest import SAMPLES, sample_names

pytestmark = pytest.mark.integration

T = TypeVar("T")
UUID_RE = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
SAMPLE = SAMPLES / "small-grant-head-of-section.json"
# What the sample says about people: never printed by status, timeline or tail.
PERSONAL = ("Eva Nilsen", "eva@pasvik.example.no", "+4747788990")
# An approval moves on at once: the agreement is offered (and, with the test configuration's
# deadlines of seconds, lapses when nobody accepts it).
APPROVED_OR_LATER = ("approved", "agreement_pending", "active", "lapsed")

runner = CliRunner()


def grants(*args: str) -> Result:
    return runner.invoke(app, list(args))


def ok(*args: str) -> Result:
    result = grants(*args)
    assert result.exit_code == 0, f"grants {' '.join(args)}: {result.output}"
    return result


def until(probe: Callable[[], T | None], timeout: float = 60.0, interval: float = 0.5) -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"not within {timeout}s (last: {last!r})")


def status_of(app_id: str) -> dict[str, Any]:
    shown: dict[str, Any] = json.loads(ok("status", app_id, "--json").stdout)
    return shown


def submit_sample() -> str:
    result = ok("submit", "--fresh-ref", str(SAMPLE))
    (line,) = result.stdout.splitlines()
    assert " created " in line
    match = UUID_RE.search(line)
    assert match, line
    return match.group(0)


def in_review(app_id: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        shown = status_of(app_id)
        return shown if shown["status"] == "in_review" and shown["advisor"] else None

    return until(probe)


def test_a_sample_goes_from_submission_to_decision(stack: Settings) -> None:
    app_id = submit_sample()
    shown = in_review(app_id)
    assert shown["funding_line"] == "UD-PROJECT"
    assert shown["decider_role"] == "head_of_section"
    advisor: str = shown["advisor"]

    table = ok("status", app_id).stdout
    assert "in_review" in table and advisor in table and "75 000.00 NOK" in table
    assert not any(secret in table for secret in PERSONAL)

    # Search: Temporal's visibility store, and the review service's assignments.
    def listed() -> bool:
        found = json.loads(
            ok(
                "list", "--line", "UD-PROJECT", "--advisor", advisor, "--json", "--limit", "200"
            ).stdout
        )
        return any(row["application_id"] == app_id for row in found)

    until(listed, timeout=30)
    found = json.loads(
        ok("list", "--source", "review", "--advisor", advisor, "--limit", "500", "--json").stdout
    )
    assert any(row["application_id"] == app_id for row in found)

    # Someone else is not the assigned advisor: refused with the workflow's reason.
    other = next(a for a in ("kari.nordmann", "olav.lie", "marina.ivanova") if a != advisor)
    refused = grants(
        *("review", app_id, "--advisor", other, "--scores", "5,4,4,3,5"),
        *("--comment", "Solid.", "--recommend", "approve"),
    )
    assert refused.exit_code == 1
    assert "only the assigned advisor can act on this application" in refused.stderr

    reviewed = ok(
        *("review", app_id, "--advisor", advisor, "--scores", "5,4,4,3,5"),
        *("--comment", "Solid cross-border content.", "--recommend", "approve"),
    )
    assert "awaiting_decision" in reviewed.stdout

    # The director does not decide a small grant: the reason, in red, exit status 1.
    wrong = grants("decide", app_id, "--role", "director", "--decider", "erik.haugen", "--approve")
    assert wrong.exit_code == 1
    assert "this application is decided by the head_of_section" in wrong.stderr

    decided = ok(
        *("decide", app_id, "--role", "head_of_section", "--decider", "ingrid.solberg"),
        *("--approve", "--json"),
    )
    outcome = json.loads(decided.stdout)
    assert outcome["status"] == "approved"
    assert outcome["amount"] == {"amount": "75000.00", "currency": "NOK"}
    assert status_of(app_id)["status"] in APPROVED_OR_LATER

    # Deciding again is refused: the review is over (decided), nothing is open for actions.
    again = grants("decide", app_id, "--role", "head_of_section", "--approve")
    assert again.exit_code == 1
    assert "review answered" in again.stderr
    assert "is open for actions" in again.stderr or "while the application is" in again.stderr

    # The timeline is intake's copy of the events, filled from Kafka behind the decision.
    def complete() -> str | None:
        shown = ok("timeline", app_id).stdout
        expected = ("application.submitted", "review.submitted", "decision.made")
        return shown if all(event in shown for event in expected) else None

    timeline = until(complete, timeout=30)
    events = json.loads(ok("timeline", app_id, "--json").stdout)
    (decision,) = [e for e in events if e["type"] == "decision.made"]
    assert (decision["actor"], decision["status"]) == ("ingrid.solberg", "approved")
    assert not any(secret in timeline + json.dumps(events) for secret in PERSONAL)

    year = str(datetime.now(UTC).year)
    ledger = ok("ledger", "--year", year).stdout
    assert "UD-PROJECT" in ledger and "available" in ledger
    ledgers = json.loads(ok("ledger", "--year", year, "--json").stdout)
    assert any(entry["funding_line"] == "UD-PROJECT" for entry in ledgers)

    tailed = ok(
        "tail", "--from-beginning", "--application", app_id, "--max", "3", "--timeout", "20"
    )
    lines = tailed.stdout.splitlines()
    assert len(lines) == 3, tailed.output
    assert all(app_id in line for line in lines)
    assert "application.submitted" in lines[0]
    assert not any(secret in tailed.stdout for secret in PERSONAL)


def test_the_bank_confirms_a_payment(stack: Settings) -> None:
    app_id = submit_sample()
    advisor = in_review(app_id)["advisor"]
    ok(
        *("review", app_id, "--advisor", advisor, "--scores", "4,4,4,4,4"),
        *("--comment", "Fine.", "--recommend", "approve", "--amount", "50000"),
    )
    ok("decide", app_id, "--approve")  # the role the review names, the roster's decider
    accepted = ok("accept", app_id, "--by", "Eva Nilsen", "--json")
    assert json.loads(accepted.stdout)["status"] == "active"

    def advance() -> dict[str, Any] | None:
        rows = json.loads(ok("payments", "--application", app_id, "--json").stdout)
        return rows[0] if rows else None

    payment = until(advance, timeout=30)
    assert payment["kind"] == "advance" and payment["status"] == "requested"
    assert "payee_name" not in payment
    reference = payment["reference"]

    confirmed = ok("bank", "confirm", reference, "--wait", "30")
    assert f"{reference} attempt 1: confirmed" in confirmed.stdout
    shown = ok("payments", "--application", app_id).stdout
    assert reference in shown and "confirmed" in shown

    def confirmation_shown() -> bool:
        events = json.loads(ok("timeline", app_id, "--json").stdout)
        return "payment.confirmed" in [e["type"] for e in events]

    until(confirmation_shown, timeout=30)

    missing = grants("bank", "confirm", "BG-000000000000-A9", "--wait", "0")
    assert missing.exit_code == 1 and "no payment with that reference" in missing.stderr


def test_submit_a_directory_of_samples_with_a_progress_bar(stack: Settings) -> None:
    result = ok("submit", "--fresh-ref", str(SAMPLES))
    lines = result.stdout.splitlines()
    assert len(lines) == len(sample_names())
    assert all(" created " in line for line in lines)
    ids = [UUID_RE.search(line).group(0) for line in lines]  # type: ignore[union-attr]
    assert len(set(ids)) == len(ids)
    count = len(lines)
    assert f"{count} submitted ({count} new, 0 existing), 0 failed" in result.stderr
    assert "submitting" in result.stderr  # the progress bar
    # Every one of them is an application with a lifecycle.
    for app_id in ids:

        def started(app_id: str = app_id) -> str | None:
            status: str | None = status_of(app_id)["status"]
            return status

        until(started, timeout=30)


def _ctrl_c_as_at_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_the_installed_command_tails_until_ctrl_c(stack: Settings, tmp_path: Path) -> None:
    command = REPO_ROOT / ".venv" / "bin" / "grants"
    assert command.exists(), "pip install -e . installs the grants console script"
    errors, output = tmp_path / "stderr", tmp_path / "stdout"
    app_id = ""
    with errors.open("w") as stderr, output.open("w") as stdout:
        process = subprocess.Popen(
            [str(command), "tail", "--type", "application."],
            stdout=stdout,
            stderr=stderr,
            text=True,
            # A runner that starts the suite in the background (`cmd &`, nohup) hands its
            # children SIGINT ignored, and Python then never turns Ctrl-C into
            # KeyboardInterrupt; a terminal's Ctrl-C arrives with the default disposition.
            preexec_fn=_ctrl_c_as_at_a_terminal,
        )
        try:
            until(lambda: "following" in errors.read_text(), timeout=30, interval=0.2)
            app_id = submit_sample()
            # Shown as soon as it is published (a busy machine may take a few seconds).
            until(lambda: app_id in output.read_text(), timeout=60, interval=0.2)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
    out, err = output.read_text(), errors.read_text()
    assert process.returncode == 0, err
    assert "stopped" in err and "Traceback" not in err
    assert any(app_id in line and "application.submitted" in line for line in out.splitlines()), out
