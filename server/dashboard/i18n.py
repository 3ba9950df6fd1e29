"""The dashboard's language: zh-CN unless the user chose English (a cookie), through fpverify.i18n.

Message ids are English; server/locale/zh_CN/LC_MESSAGES/dashboard.po holds the Chinese. Codes
stored in records (outcomes, purposes, matcher.quality reason codes, alert states, roles) are shown
as words through WORDS, never as the code. Dates and numbers are formatted by Babel for the locale.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from pathlib import Path

from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal, format_percent
from fastapi import Request

from fpverify.i18n import LANGUAGES, N_, Catalogs, normalise_language

CATALOGS = Catalogs("dashboard", Path(__file__).resolve().parent.parent / "locale")
LANG_COOKIE = "fpv_lang"
BABEL_LOCALE = {"zh_CN": "zh_Hans_CN", "en": "en"}

WORDS: dict[str, dict[str, str]] = {
    "outcome": {"match": N_("match"), "delegate_match": N_("delegate match"), "no_match": N_("no match"),
                "poor_quality": N_("poor press"), "not_enrolled": N_("not enrolled"),
                "card_blocked": N_("card blocked"), "sensor_error": N_("sensor error")},
    "purpose": {"registration": N_("registration"), "admission": N_("admission"), "billing": N_("billing"),
                "pharmacy": N_("pharmacy"), "bedside": N_("bedside check")},
    # matcher.quality reason codes (the station's poor_quality detail) and its placement hints
    "reason": {"small_area": N_("finger area too small"), "low_contrast": N_("press too light"),
               "few_minutiae": N_("too few fingerprint features"), "low_clarity": N_("print not clear"),
               "no_finger": N_("no finger on the sensor"), "move_up": N_("finger too low"),
               "move_down": N_("finger too high"), "move_left": N_("finger too far right"),
               "move_right": N_("finger too far left")},
    "status": {"open": N_("open"), "acknowledged": N_("acknowledged"), "resolved": N_("resolved"),
               "active": N_("open + acknowledged"), "all": N_("all"), "blocked": N_("blocked"),
               "valid": N_("valid"), "revoked": N_("revoked"), "handled": N_("handled")},
    "role": {"sysadmin": N_("system administrator"), "auditor": N_("auditor"), "supervisor": N_("supervisor"),
             "enroller": N_("enroller"), "holder": N_("holder"), "delegate": N_("delegate")},
    "kind": {"no_match": N_("no match"), "bad_signature": N_("bad signature"), "acknowledge": N_("acknowledgement"),
             "note": N_("note"), "resolve": N_("resolution")},
}


def language(request: Request) -> str:
    """The viewer's language: the cookie set by the switch, else zh_CN."""
    return normalise_language(request.cookies.get(LANG_COOKIE))


@dataclass(frozen=True)
class Speaker:
    """Words, times and numbers for one language (what templates and routes call)."""

    lang: str
    tz: tzinfo

    @property
    def locale(self) -> str:
        return BABEL_LOCALE[self.lang]

    def _(self, message: str, **values) -> str:
        return CATALOGS.gettext(self.lang, message, **values)

    def word(self, group: str, code: str | None) -> str:
        """A stored code as a word; an unknown code is shown as it is (it is not a message)."""
        if code is None or code == "":
            return ""
        known = WORDS[group].get(str(code))
        return self._(known) if known else str(code)

    def detail(self, outcome: str, text: str | None) -> str:
        """A result's detail: matcher reason codes ('small_area; few_minutiae') as words."""
        if not text:
            return ""
        parts = [p.strip() for p in text.split(";")]
        if outcome == "poor_quality" or all(p in WORDS["reason"] for p in parts):
            return self._("; ").join(self.word("reason", p) for p in parts if p)
        return text

    def dt(self, value: datetime | None, seconds: bool = True) -> str:
        if value is None:
            return ""
        return format_datetime(value, "medium" if seconds else "short", tzinfo=self.tz, locale=self.locale)

    def day(self, value: date) -> str:
        return format_date(value, "medium", locale=self.locale)

    def num(self, value, digits: int = 0) -> str:
        if value is None or value == "":
            return "–"
        return format_decimal(value, format="#,##0" + ("." + "0" * digits if digits else ""), locale=self.locale)

    def pct(self, fraction, digits: int = 1) -> str:
        if fraction is None or fraction == "":
            return "–"
        return format_percent(fraction, format="#,##0" + ("." + "0" * digits if digits else "") + "%",
                              locale=self.locale)


def languages() -> dict[str, str]:
    return dict(LANGUAGES)
