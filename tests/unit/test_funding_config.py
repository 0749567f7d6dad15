"""The funding configuration file: defaults from the domain brief, and the errors an operator
sees when the file is wrong."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from shared.config import REPO_ROOT
from shared.funding import (
    DEFAULT_PATH,
    ENV_VAR,
    FundingConfig,
    FundingConfigError,
    default_config_path,
    load_funding_config,
    parse_duration,
)

FAST = REPO_ROOT / "tests" / "fixtures" / "funding-fast.toml"
ALL_LINES = ["UD-PROJECT", "UD-CORE", "BFD-YOUTH", "BARENTSKULT", "KOLARCTIC"]


@pytest.fixture(scope="module")
def config() -> FundingConfig:
    return load_funding_config(DEFAULT_PATH)


def write(tmp_path: Path, text: str, name: str = "funding.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def override(tmp_path: Path, text: str) -> Path:
    """A file that is the default configuration plus `text`."""
    return write(tmp_path, f'extends = "{DEFAULT_PATH.as_posix()}"\n{text}')


def problems_of(path: Path) -> list[str]:
    with pytest.raises(FundingConfigError) as caught:
        load_funding_config(path)
    return caught.value.problems


# --- defaults ------------------------------------------------------------------------------


def test_default_file_holds_the_funding_lines_table(config: FundingConfig) -> None:
    assert list(config.lines) == ALL_LINES
    expected = {
        # code: (type, currency, annual budget, max per grant, max share)
        "UD-PROJECT": ("project", "NOK", "40000000", "1000000", "0.5"),
        "UD-CORE": ("core", "NOK", "10000000", "2000000", "0.7"),
        "BFD-YOUTH": ("project", "NOK", "6000000", "300000", "0.8"),
        "BARENTSKULT": ("project", "NOK", "8000000", "500000", "0.5"),
        "KOLARCTIC": ("project", "EUR", "5000000", "500000", "0.9"),
    }
    for code, (ftype, currency, budget, cap, share) in expected.items():
        line = config.line(code)
        assert line.code == code
        assert line.owner
        assert (line.funding_type, line.currency) == (ftype, currency)
        assert line.budget_for(2027) == Decimal(budget)
        assert line.max_per_grant == Decimal(cap)
        assert line.max_share == Decimal(share)
        assert isinstance(line.max_share, Decimal)
        assert line.min_cooperation_chars == 200
        assert line.max_period_months == 36
    core = config.line("UD-CORE")
    assert core.max_per_grant_is_annual and core.requires_annual_accounts
    assert core.core_years is not None and (core.core_years.min, core.core_years.max) == (1, 3)
    assert config.line("BFD-YOUTH").youth_target_groups
    assert config.line("BARENTSKULT").culture_categories


def test_cross_border_defaults(config: FundingConfig) -> None:
    rule = config.line("UD-PROJECT").cross_border
    assert rule.partner_countries["NO"] == ["RU"]
    assert set(rule.partner_countries["RU"]) == {"NO", "SE", "FI"}
    assert rule.required_groups == []
    kolarctic = config.line("KOLARCTIC").cross_border
    assert kolarctic.required_groups == [["RU"], ["NO", "SE", "FI"]]
    assert kolarctic.require_lead_partner


def test_default_deadlines_are_timedeltas(config: FundingConfig) -> None:
    d = config.deadlines
    assert d.review_reminder == timedelta(days=10)
    assert d.review_escalation == timedelta(days=14)
    assert d.information_answer == timedelta(days=21)
    assert d.agreement_acceptance == timedelta(days=30)
    assert d.agreement_reminder == timedelta(days=23)
    assert d.payment_confirmation_alert == timedelta(days=3)
    assert d.final_report_due == timedelta(days=90)
    assert d.report_reminder_before == timedelta(days=14)
    assert d.report_overdue_notice == timedelta(days=7)
    assert d.report_escalation == timedelta(days=30)


def test_board_meets_in_2027_and_cases_go_to_the_next_meeting(config: FundingConfig) -> None:
    board = config.board
    assert sum(1 for d in board.meeting_dates if d.year == 2027) >= 4
    assert board.meeting_dates == sorted(board.meeting_dates)
    assert board.meeting_interval is None
    # Ready a week before a meeting: on its agenda; a day later: the next one.
    assert board.next_meeting(date(2027, 3, 3)) == date(2027, 3, 10)
    assert board.next_meeting(date(2027, 3, 4)) == date(2027, 6, 9)
    assert board.next_meeting(date(2030, 1, 1)) is None


def test_roster_covers_every_line_with_usernames_only(config: FundingConfig) -> None:
    assert config.roster.head_of_section and config.roster.director
    for code in ALL_LINES:
        assert config.advisors_for(code), code
    for advisor in config.roster.advisors:
        assert "@" not in advisor.id and " " not in advisor.id
    assert config.advisors_for("NOPE") == []


def test_unknown_line_lookup_names_the_code_and_the_known_ones(config: FundingConfig) -> None:
    with pytest.raises(KeyError, match=r"unknown funding line 'UD-NOPE'.*UD-PROJECT"):
        config.line("UD-NOPE")


# --- where the file comes from --------------------------------------------------------------


def test_path_defaults_to_repo_config_and_env_var_overrides(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert default_config_path() == REPO_ROOT / "config" / "funding.toml"
    path = override(tmp_path, '[lines.UD-PROJECT]\nmax_share = "0.6"\n')
    monkeypatch.setenv(ENV_VAR, str(path))
    assert default_config_path() == path
    assert load_funding_config().line("UD-PROJECT").max_share == Decimal("0.6")


def test_fast_fixture_has_second_deadlines_and_the_same_lines(config: FundingConfig) -> None:
    fast = load_funding_config(FAST)
    assert fast.lines == config.lines
    # The same people, without workload limits (tests leave many applications in review).
    assert [a.id for a in fast.roster.advisors] == [a.id for a in config.roster.advisors]
    assert (fast.roster.head_of_section, fast.roster.director) == (
        config.roster.head_of_section,
        config.roster.director,
    )
    assert all(a.max_open is None for a in fast.roster.advisors)
    for name in type(fast.deadlines).model_fields:
        value: timedelta = getattr(fast.deadlines, name)
        assert value <= timedelta(seconds=30), name
    assert fast.board.meeting_interval == timedelta(seconds=5)


# --- values --------------------------------------------------------------------------------


def test_per_year_budget_override(tmp_path: Path) -> None:
    path = override(
        tmp_path, '[lines.UD-PROJECT.annual_budget]\n2027 = "42000000"\n2028 = "38500000.50"\n'
    )
    line = load_funding_config(path).line("UD-PROJECT")
    assert line.budget_for(2026) == Decimal("40000000")
    assert line.budget_for(2027) == Decimal("42000000")
    assert line.budget_for(2028) == Decimal("38500000.50")
    assert line.budget_for(2029) == Decimal("40000000")


@pytest.mark.parametrize(
    ("code", "amount", "decider"),
    [
        ("UD-PROJECT", "99999.99", "head_of_section"),
        ("UD-PROJECT", "100000", "head_of_section"),
        ("UD-PROJECT", "100000.01", "director"),
        ("BFD-YOUTH", "300000", "director"),
        ("KOLARCTIC", "9999", "head_of_section"),
        ("KOLARCTIC", "10000.00", "head_of_section"),
        ("KOLARCTIC", "10000.01", "director"),
        ("KOLARCTIC", "150310", "director"),
        ("UD-CORE", "50000", "board"),
        ("UD-CORE", "3600000", "board"),
    ],
)
def test_decider_for(config: FundingConfig, code: str, amount: str, decider: str) -> None:
    assert config.line(code).decider_for(Decimal(amount)) == decider


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P10D", timedelta(days=10)),
        ("PT5S", timedelta(seconds=5)),
        ("PT0.5S", timedelta(milliseconds=500)),
        ("P1DT6H", timedelta(days=1, hours=6)),
        ("PT1H30M", timedelta(hours=1, minutes=30)),
        ("P2W", timedelta(weeks=2)),
    ],
)
def test_durations_are_iso_8601(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["10 days", "P", "PT", "P1DT", "P1M", "P1Y", "PT0S", "-P1D", 10])
def test_bad_durations_are_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


# --- an operator's mistakes --------------------------------------------------------------------


def test_unknown_line_in_roster(tmp_path: Path) -> None:
    path = override(
        tmp_path,
        "[[roster.advisors]]\n"
        'id = "kari.nordmann"\nname = "Kari Nordmann"\n'
        'lines = ["UD-PROJECT", "UD-CORE", "BFD-YOUTH", "BARENTSKULT", "KOLARCTIC"]\n'
        "[[roster.advisors]]\n"
        'id = "olav.lie"\nname = "Olav Lie"\nlines = ["UD-PROJEKT"]\n',
    )
    [problem] = problems_of(path)
    assert problem.startswith(
        f"{path}: roster.advisors[1].lines: unknown funding line 'UD-PROJEKT'"
    )


def test_line_without_advisor(tmp_path: Path) -> None:
    path = override(
        tmp_path,
        '[[roster.advisors]]\nid = "kari.nordmann"\nname = "Kari Nordmann"\n'
        'lines = ["UD-PROJECT", "UD-CORE", "BFD-YOUTH", "BARENTSKULT"]\n',
    )
    assert problems_of(path) == [
        f"{path}: lines.KOLARCTIC: no advisor in roster.advisors covers this line"
    ]


def test_share_over_one(tmp_path: Path) -> None:
    path = override(tmp_path, '[lines.KOLARCTIC]\nmax_share = "1.5"\n')
    assert problems_of(path) == [f"{path}: lines.KOLARCTIC.max_share: must be between 0 and 1"]


def test_bad_duration_in_file(tmp_path: Path) -> None:
    path = override(tmp_path, '[deadlines]\nreview_reminder = "10 days"\n')
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}: deadlines.review_reminder: '10 days' is not an ISO-8601")


def test_bare_number_duration_is_refused(tmp_path: Path) -> None:
    path = override(tmp_path, "[deadlines]\ninformation_answer = 21\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}: deadlines.information_answer: must be an ISO-8601")


def test_missing_field(tmp_path: Path) -> None:
    text = DEFAULT_PATH.read_text(encoding="utf-8")
    assert text.count('currency = "EUR"\n') == 1
    path = write(tmp_path, text.replace('currency = "EUR"\n', ""))
    assert problems_of(path) == [f"{path}: lines.KOLARCTIC.currency: missing"]


def test_float_money_is_refused(tmp_path: Path) -> None:
    path = override(tmp_path, "[lines.UD-PROJECT]\nmax_per_grant = 1000000.0\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}: lines.UD-PROJECT.max_per_grant: write money as a string")


def test_misspelt_setting_is_refused(tmp_path: Path) -> None:
    path = override(tmp_path, '[lines.BFD-YOUTH]\nmax_shares = "0.8"\n')
    assert problems_of(path) == [f"{path}: lines.BFD-YOUTH.max_shares: unknown setting"]


def test_bad_budget_year_key(tmp_path: Path) -> None:
    path = override(tmp_path, '[lines.UD-PROJECT.annual_budget]\nnext = "1"\n')
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}: lines.UD-PROJECT.annual_budget: 'next'")


def test_core_line_needs_core_years(tmp_path: Path) -> None:
    text = DEFAULT_PATH.read_text(encoding="utf-8").replace(
        "core_years = { min = 1, max = 3 }\n", ""
    )
    path = write(tmp_path, text)
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}: lines.UD-CORE: core_years:")


def test_reminder_after_escalation(tmp_path: Path) -> None:
    path = override(tmp_path, '[deadlines]\nreview_reminder = "P20D"\n')
    assert problems_of(path) == [
        f"{path}: deadlines: review_reminder: must be shorter than review_escalation"
    ]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = override(
        tmp_path,
        '[lines.KOLARCTIC]\nmax_share = "-0.1"\ncurrency = "SEK"\n'
        '[deadlines]\npayment_confirmation_alert = "3d"\n',
    )
    problems = problems_of(path)
    assert len(problems) == 3
    assert any("lines.KOLARCTIC.max_share: must be between 0 and 1" in p for p in problems)
    assert any("lines.KOLARCTIC.currency:" in p for p in problems)
    assert any("deadlines.payment_confirmation_alert:" in p for p in problems)
    assert all(p.startswith(f"{path}: ") for p in problems)


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    [problem] = problems_of(missing)
    assert problem.startswith(f"{missing}: cannot read")
    broken = write(tmp_path, "[lines.UD-PROJECT\n", "broken.toml")
    [problem] = problems_of(broken)
    assert problem.startswith(f"{broken}: not valid TOML")


def test_error_names_repo_files_relative_to_the_repo() -> None:
    # Operators see the path they edit, e.g. "config/funding.toml: ...".
    missing = REPO_ROOT / "config" / "does-not-exist.toml"
    [problem] = problems_of(missing)
    assert problem.startswith("config/does-not-exist.toml: cannot read")
