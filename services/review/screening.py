"""Automatic eligibility screening: the domain brief's rules 1-6, as a pure function.

No I/O, no clock, no Temporal: the caller passes the configuration and today's date, so the
same application screens the same way in a workflow replay, a test or an API preview.
Every failing rule is reported (never just the first), each with a stable machine code and
a readable text in the applicant's three possible languages.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict

from shared.contracts.application import ApplicationDocument, FundingType
from shared.funding import CrossBorderRule, FundingConfig, FundingLine

Lang = Literal["nb", "en", "ru"]
LANGS: tuple[Lang, ...] = ("nb", "en", "ru")


class Reason(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    text: dict[Lang, str]


class ScreeningResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    eligible: bool
    reasons: list[Reason]

    @property
    def codes(self) -> list[str]:
        return [r.code for r in self.reasons]


def _reason(code: str, nb: str, en: str, ru: str) -> Reason:
    return Reason(code=code, text={"nb": nb, "en": en, "ru": ru})


# --- formatting: numbers, dates, countries, lists in each language --------------------------


def _group(digits: str, sep: str) -> str:
    out = ""
    while len(digits) > 3:
        out = sep + digits[-3:] + out
        digits = digits[:-3]
    return digits + out


def _number(value: Decimal, lang: Lang, places: int = 2) -> str:
    # Whole amounts without decimals ("450 000"), others with two ("150 310,50").
    value = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    if value == value.to_integral_value():
        value = value.quantize(Decimal(1))
    sign = "-" if value < 0 else ""
    whole, _, frac = f"{abs(value):f}".partition(".")
    thousands, point = (",", ".") if lang == "en" else (" ", ",")
    return sign + _group(whole, thousands) + (point + frac if frac else "")


def _money(value: Decimal, currency: str, lang: Lang) -> str:
    return f"{_number(value, lang)} {currency}"


def _percent(fraction: Decimal, lang: Lang, places: int = 1) -> str:
    number = _number(fraction * 100, lang, places)
    return f"{number}%" if lang == "en" else f"{number} %"


def _share_pair(share: Decimal, limit: Decimal, lang: Lang) -> tuple[str, str]:
    # Enough decimals that an over-limit share never reads as equal to the limit
    # (50.04 % must not print as "50 % exceeds 50 %").
    for places in range(1, 5):
        shown = _percent(share, lang, places)
        if shown != _percent(limit, lang, places):
            break
    return shown, _percent(limit, lang, 1)


_MONTHS_EN = (
    "January February March April May June July August September October November December"
).split()


def _date(d: date, lang: Lang) -> str:
    if lang == "en":
        return f"{d.day} {_MONTHS_EN[d.month - 1]} {d.year}"
    return f"{d.day:02d}.{d.month:02d}.{d.year}"


# Country names; Russian in the genitive case, as used after "из" ("from").
_COUNTRIES: dict[str, dict[Lang, str]] = {
    "NO": {"nb": "Norge", "en": "Norway", "ru": "Норвегии"},
    "RU": {"nb": "Russland", "en": "Russia", "ru": "России"},
    "SE": {"nb": "Sverige", "en": "Sweden", "ru": "Швеции"},
    "FI": {"nb": "Finland", "en": "Finland", "ru": "Финляндии"},
    "DK": {"nb": "Danmark", "en": "Denmark", "ru": "Дании"},
    "IS": {"nb": "Island", "en": "Iceland", "ru": "Исландии"},
}
_OR: dict[Lang, str] = {"nb": "eller", "en": "or", "ru": "или"}


def _country(code: str, lang: Lang) -> str:
    return _COUNTRIES.get(code, {}).get(lang, code)


def _countries(codes: Iterable[str], lang: Lang) -> str:
    names = [_country(c, lang) for c in codes]
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} {_OR[lang]} {names[-1]}"


def _ru_plural(n: int, one: str, few: str, many: str) -> str:
    if n % 10 == 1 and n % 100 != 11:
        return one
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return few
    return many


_FUNDING_TYPE: dict[FundingType, dict[Lang, str]] = {
    "project": {"nb": "prosjektmidler", "en": "project funding", "ru": "проектное финансирование"},
    "core": {"nb": "kjernestøtte", "en": "core support", "ru": "базовое финансирование"},
}


def _add_months(d: date, months: int) -> date:
    # Same day of month, clamped to the month's last day (31 Jan + 1 month = 28/29 Feb).
    month_index = d.month - 1 + months
    year, month = d.year + month_index // 12, month_index % 12 + 1
    next_month = date(year + month // 12, month % 12 + 1, 1)
    last_day = (next_month - date(year, month, 1)).days
    return date(year, month, min(d.day, last_day))


def _normalise(text: str) -> str:
    return " ".join(text.casefold().split())


# --- the rules -----------------------------------------------------------------------------


def _funding_line(document: ApplicationDocument, config: FundingConfig) -> list[Reason]:
    code, known = document.funding_line, ", ".join(config.lines)
    return [
        _reason(
            "unknown_funding_line",
            nb=f"Tilskuddsordningen «{code}» finnes ikke. Gyldige ordninger: {known}.",
            en=f'The funding line "{code}" does not exist. Valid funding lines: {known}.',
            ru=f"Программы финансирования «{code}» не существует. Действующие программы: {known}.",
        )
    ]


def _cross_border(
    document: ApplicationDocument, rule: CrossBorderRule, line_code: str
) -> list[Reason]:
    """Rule 1: a partner across the border, plus any country groups the line requires."""
    reasons: list[Reason] = []
    home = document.applicant.country
    partner_countries = {p.country for p in document.partners}
    wanted = rule.partner_countries.get(home)
    if wanted is None:
        allowed = list(rule.partner_countries)
        reasons.append(
            _reason(
                "applicant_country_not_eligible",
                nb=f"Søkere fra {_country(home, 'nb')} kan ikke søke på {line_code}; "
                f"søkeren må være fra {_countries(allowed, 'nb')}.",
                en=f"Applicants from {_country(home, 'en')} cannot apply to {line_code}; "
                f"the applicant must be from {_countries(allowed, 'en')}.",
                ru=f"Заявители из {_country(home, 'ru')} не могут подавать заявки в программу "
                f"{line_code}; заявитель должен быть из {_countries(allowed, 'ru')}.",
            )
        )
    elif not partner_countries & set(wanted):
        reasons.append(
            _reason(
                "no_cross_border_partner",
                nb="Ingen partner er fra den andre siden av grensen: en søker fra "
                f"{_country(home, 'nb')} må ha minst én partner fra {_countries(wanted, 'nb')}.",
                en="No partner is from across the border: an applicant from "
                f"{_country(home, 'en')} needs at least one partner from "
                f"{_countries(wanted, 'en')}.",
                ru="Нет партнёра с другой стороны границы: заявителю из "
                f"{_country(home, 'ru')} нужен хотя бы один партнёр из "
                f"{_countries(wanted, 'ru')}.",
            )
        )

    present = partner_countries | {home}
    missing = [group for group in rule.required_groups if not present & set(group)]
    if missing:
        reasons.append(
            _reason(
                "partner_countries_missing",
                nb=" ".join(
                    f"I {line_code} må søkeren eller en partner være fra "
                    f"{_countries(g, 'nb')}; ingen er det."
                    for g in missing
                ),
                en=" ".join(
                    f"For {line_code}, the applicant or a partner must be from "
                    f"{_countries(g, 'en')}; none is."
                    for g in missing
                ),
                ru=" ".join(
                    f"В программе {line_code} заявитель или один из партнёров должен быть из "
                    f"{_countries(g, 'ru')}; таких нет."
                    for g in missing
                ),
            )
        )

    leads = sum(1 for p in document.partners if p.role == "lead")
    if rule.require_lead_partner and leads > 1:
        reasons.append(
            _reason(
                "multiple_lead_partners",
                nb=f"{leads} partnere er oppgitt som hovedpartner (lead partner); "
                "det kan bare være én.",
                en=f"{leads} partners are marked as lead partner; there can be only one.",
                ru=f"Ведущим партнёром указано несколько организаций ({leads}); "
                "допускается только одна.",
            )
        )
    return reasons


def _cooperation(document: ApplicationDocument, minimum: int) -> list[Reason]:
    """Rule 2: having a partner is not enough; the cooperation itself must be described."""
    length = len(document.cooperation.strip())
    if length >= minimum:
        return []
    what = {
        "nb": "den må beskrive hva partnerne gjør sammen (utveksling, felles aktiviteter).",
        "en": "it must describe what the partners do together (exchanges, joint activities).",
        "ru": "в нём должно быть описано, что партнёры делают вместе "
        "(обмены, совместные мероприятия).",
    }
    ru_min = f"{minimum} {_ru_plural(minimum, 'знака', 'знаков', 'знаков')}"
    if length == 0:
        return [
            _reason(
                "cooperation_too_thin",
                nb=f"Beskrivelsen av samarbeidet mangler; den må ha minst {minimum} tegn, og "
                + what["nb"],
                en="The description of the cooperation is missing; it needs at least "
                f"{minimum} characters, and " + what["en"],
                ru=f"Описание сотрудничества отсутствует; требуется не менее {ru_min}, и "
                + what["ru"],
            )
        ]
    chars_en = "character" if length == 1 else "characters"
    ru_len = f"{length} {_ru_plural(length, 'знак', 'знака', 'знаков')}"
    return [
        _reason(
            "cooperation_too_thin",
            nb=f"Beskrivelsen av samarbeidet er for kort ({length} tegn, minst {minimum}); "
            + what["nb"],
            en=f"The description of the cooperation is too short ({length} {chars_en}, "
            f"at least {minimum}); " + what["en"],
            ru=f"Описание сотрудничества слишком короткое ({ru_len}, требуется не менее "
            f"{ru_min}); " + what["ru"],
        )
    ]


def _amounts(document: ApplicationDocument, line: FundingLine) -> list[Reason]:
    """Rule 3: the line's max per grant and max share of the total budget."""
    reasons: list[Reason] = []
    budget = document.budget
    requested, total = budget.requested, budget.total
    line_code = line.code

    if budget.currency != line.currency:
        reasons.append(
            _reason(
                "currency_mismatch",
                nb=f"Budsjettet er i {budget.currency}, men {line_code} gir tilskudd "
                f"i {line.currency}.",
                en=f"The budget is in {budget.currency}, but {line_code} grants are "
                f"in {line.currency}.",
                ru=f"Бюджет указан в {budget.currency}, но программа {line_code} выделяет "
                f"средства в {line.currency}.",
            )
        )
    else:
        # Comparing amounts across currencies would be meaningless, so only when they match.

        def m(value: Decimal, lang: Lang) -> str:
            return _money(value, line.currency, lang)

        cap = line.max_per_grant
        if line.max_per_grant_is_annual:
            # Capped per year: without a number of years (itself a reason) there is no
            # yearly amount to compare, so nothing is guessed.
            years = document.core_years
            if years is not None and requested > cap * years:
                per_year = requested / years
                ru_years = _ru_plural(years, "год", "года", "лет")
                en_years = "year" if years == 1 else "years"
                reasons.append(
                    _reason(
                        "amount_over_max",
                        nb=f"Omsøkt beløp {m(requested, 'nb')} over {years} år blir "
                        f"{m(per_year, 'nb')} per år, mer enn maksimum på {m(cap, 'nb')} "
                        f"per år i {line_code}.",
                        en=f"The requested amount {m(requested, 'en')} over {years} "
                        f"{en_years} is {m(per_year, 'en')} a year, above {line_code}'s "
                        f"maximum of {m(cap, 'en')} a year.",
                        ru=f"Запрошенная сумма {m(requested, 'ru')} на {years} {ru_years} "
                        f"составляет {m(per_year, 'ru')} в год, что превышает максимум "
                        f"{m(cap, 'ru')} в год в программе {line_code}.",
                    )
                )
        elif requested > cap:
            reasons.append(
                _reason(
                    "amount_over_max",
                    nb=f"Omsøkt beløp {m(requested, 'nb')} er mer enn maksimum på "
                    f"{m(cap, 'nb')} per tilskudd i {line_code}.",
                    en=f"The requested amount {m(requested, 'en')} exceeds {line_code}'s "
                    f"maximum of {m(cap, 'en')} per grant.",
                    ru=f"Запрошенная сумма {m(requested, 'ru')} превышает максимум "
                    f"{m(cap, 'ru')} на один грант в программе {line_code}.",
                )
            )

    # Exact: requested / total > max_share, multiplied out so no division rounds.
    if requested > line.max_share * total:
        share = requested / total
        cur = budget.currency
        text: dict[Lang, str] = {}
        for lang in LANGS:
            shown, limit = _share_pair(share, line.max_share, lang)
            req, tot = _money(requested, cur, lang), _money(total, cur, lang)
            text[lang] = {
                "nb": f"Omsøkt beløp utgjør {shown} av totalbudsjettet ({req} av {tot}); "
                f"{line_code} dekker høyst {limit}.",
                "en": f"The requested amount is {shown} of the total budget ({req} of {tot}); "
                f"{line_code} covers at most {limit}.",
                "ru": f"Запрошенная сумма составляет {shown} общего бюджета ({req} из {tot}); "
                f"программа {line_code} покрывает не более {limit}.",
            }[lang]
        reasons.append(Reason(code="share_over_max", text=text))
    return reasons


def _period(document: ApplicationDocument, max_months: int, today: date) -> list[Reason]:
    """Rule 4: a valid period that has not started and is not too long."""
    reasons: list[Reason] = []
    start, end = document.period.start, document.period.end
    if end < start:
        reasons.append(
            _reason(
                "period_ends_before_start",
                nb=f"Prosjektperioden slutter ({_date(end, 'nb')}) før den starter "
                f"({_date(start, 'nb')}).",
                en=f"The project period ends ({_date(end, 'en')}) before it starts "
                f"({_date(start, 'en')}).",
                ru=f"Период проекта заканчивается ({_date(end, 'ru')}) раньше, чем начинается "
                f"({_date(start, 'ru')}).",
            )
        )
    if start < today:
        reasons.append(
            _reason(
                "period_starts_in_past",
                nb=f"Prosjektperioden starter {_date(start, 'nb')}, før dagens dato "
                f"({_date(today, 'nb')}).",
                en=f"The project period starts on {_date(start, 'en')}, which is in the past "
                f"(today is {_date(today, 'en')}).",
                ru=f"Период проекта начинается {_date(start, 'ru')}, то есть в прошлом "
                f"(сегодня {_date(today, 'ru')}).",
            )
        )
    # Both dates count: 2027-01-01..2029-12-31 is exactly 36 months, one more day is over.
    if end >= start and end >= _add_months(start, max_months):
        reasons.append(
            _reason(
                "period_too_long",
                nb=f"Prosjektperioden {_date(start, 'nb')}–{_date(end, 'nb')} er lengre enn "
                f"{max_months} måneder.",
                en=f"The project period {_date(start, 'en')} to {_date(end, 'en')} is longer "
                f"than {max_months} months.",
                ru=f"Период проекта {_date(start, 'ru')}–{_date(end, 'ru')} превышает "
                f"максимальную продолжительность: {max_months} мес.",
            )
        )
    return reasons


def _extra_rules(document: ApplicationDocument, line: FundingLine) -> list[Reason]:
    """Rule 5: the line's own rule (youth target group, culture category, core support)."""
    reasons: list[Reason] = []
    code = line.code
    if line.youth_target_groups is not None:
        allowed = {_normalise(v) for v in line.youth_target_groups}
        if _normalise(document.target_group) not in allowed:
            group = document.target_group
            reasons.append(
                _reason(
                    "target_group_not_youth",
                    nb=f"{code} støtter bare prosjekter for barn og unge; målgruppen "
                    f"«{group}» er ikke det.",
                    en=f"{code} funds only projects for children and youth; "
                    f'the target group "{group}" is not.',
                    ru=f"Программа {code} финансирует только проекты для детей и молодёжи; "
                    f"целевая группа «{group}» к ним не относится.",
                )
            )
    if line.culture_categories is not None:
        allowed = {_normalise(v) for v in line.culture_categories}
        if _normalise(document.category) not in allowed:
            category = document.category
            reasons.append(
                _reason(
                    "category_not_culture",
                    nb=f"{code} støtter bare kulturprosjekter; kategorien «{category}» er "
                    "ikke kultur.",
                    en=f'{code} funds only cultural projects; the category "{category}" is '
                    "not culture.",
                    ru=f"Программа {code} финансирует только проекты в области культуры; "
                    f"категория «{category}» к ней не относится.",
                )
            )
    if line.requires_annual_accounts and not document.applicant.has_annual_accounts:
        reasons.append(
            _reason(
                "core_requires_annual_accounts",
                nb=f"Kjernestøtte fra {code} gis bare til organisasjoner med årsregnskap.",
                en=f"Core support from {code} is only for organisations with annual accounts.",
                ru=f"Базовое финансирование по программе {code} предоставляется только "
                "организациям с годовой финансовой отчётностью.",
            )
        )
    if line.core_years is not None:
        low, high = line.core_years.min, line.core_years.max
        years = document.core_years
        ru_range = f"от {low} до {high} {_ru_plural(high, 'года', 'лет', 'лет')}"
        if years is None:
            reasons.append(
                _reason(
                    "core_years_out_of_range",
                    nb=f"Søknaden oppgir ikke hvor mange år kjernestøtten gjelder; {code} gir "
                    f"kjernestøtte for {low}–{high} år.",
                    en="The application does not state how many years of core support it asks "
                    f"for; {code} grants core support for {low} to {high} years.",
                    ru="В заявке не указано, на сколько лет запрашивается базовое "
                    f"финансирование; программа {code} предоставляет его на срок {ru_range}.",
                )
            )
        elif not low <= years <= high:
            en_years = "year" if years == 1 else "years"
            ru_years = _ru_plural(years, "год", "года", "лет")
            reasons.append(
                _reason(
                    "core_years_out_of_range",
                    nb=f"Søknaden gjelder kjernestøtte for {years} år; {code} gir kjernestøtte "
                    f"for {low}–{high} år.",
                    en=f"The application asks for {years} {en_years} of core support; {code} "
                    f"grants core support for {low} to {high} years.",
                    ru=f"В заявке запрошено базовое финансирование на {years} {ru_years}; "
                    f"программа {code} предоставляет его на срок {ru_range}.",
                )
            )
    return reasons


def _funding_type(document: ApplicationDocument, line: FundingLine) -> list[Reason]:
    """Rule 6: project funding from a project line, core support from a core line."""
    if document.funding_type == line.funding_type:
        return []
    asked, given = _FUNDING_TYPE[document.funding_type], _FUNDING_TYPE[line.funding_type]
    return [
        _reason(
            "funding_type_mismatch",
            nb=f"Søknaden gjelder {asked['nb']}, men {line.code} gir {given['nb']}.",
            en=f"The application is for {asked['en']}, but {line.code} provides {given['en']}.",
            ru=f"Заявка подана на {asked['ru']}, но программа {line.code} предоставляет "
            f"{given['ru']}.",
        )
    ]


def screen(
    document: ApplicationDocument, line_config: FundingConfig, today: date
) -> ScreeningResult:
    """Screen an application against its funding line; every failing rule is a reason.

    An unknown funding line is itself a reason, and the rules that do not depend on the line
    (partner, cooperation text, period) are still checked with the configured defaults so
    the applicant hears about every problem at once.
    """
    config = line_config
    line = config.lines.get(document.funding_line)
    reasons: list[Reason] = []
    if line is None:
        reasons += _funding_line(document, config)
        defaults = config.defaults
        reasons += _cross_border(document, defaults.cross_border, document.funding_line)
        reasons += _cooperation(document, defaults.min_cooperation_chars)
        reasons += _period(document, defaults.max_period_months, today)
    else:
        reasons += _cross_border(document, line.cross_border, line.code)
        reasons += _cooperation(document, line.min_cooperation_chars)
        reasons += _amounts(document, line)
        reasons += _period(document, line.max_period_months, today)
        reasons += _extra_rules(document, line)
        reasons += _funding_type(document, line)
    return ScreeningResult(eligible=not reasons, reasons=reasons)
