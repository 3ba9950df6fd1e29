"""The kiosk's words: each screen's title, explanation and staff line, in the patient's language.

Message ids are English (written for a patient, not an engineer); edge/locale/zh_CN/LC_MESSAGES/
kiosk.po holds the Chinese. Screens carry only codes (screen name, ISO finger position, quality
reason codes, counts): never a card number, an image or a template.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fpverify.i18n import LANGUAGES, N_, Catalogs, normalise_language

CATALOGS = Catalogs("kiosk", Path(__file__).resolve().parent.parent / "locale")

OK, BAD, WARN, INFO = "ok", "bad", "warn", "info"

# ISO/IEC 19794-2 finger positions
FINGERS = {
    0: N_("finger"),
    1: N_("right thumb"),
    2: N_("right index finger"),
    3: N_("right middle finger"),
    4: N_("right ring finger"),
    5: N_("right little finger"),
    6: N_("left thumb"),
    7: N_("left index finger"),
    8: N_("left middle finger"),
    9: N_("left ring finger"),
    10: N_("left little finger"),
}

# matcher.quality reason codes, and the station's own placement hint, as advice to the patient
PRESS_ADVICE = {
    "small_area": N_("Too small: lay the flat of your finger on the sensor, not just the tip."),
    "low_contrast": N_("Too light: press a little harder."),
    "few_minutiae": N_("Not enough of your fingerprint was seen: press the middle of your fingertip flat."),
    "low_clarity": N_("Not clear: wipe your finger dry and keep it still."),
    "no_finger": N_("No finger was felt on the sensor."),
    "move_up": N_("Move your finger up on the sensor."),
    "move_down": N_("Move your finger down a little."),
    "move_left": N_("Move your finger to the left a little."),
    "move_right": N_("Move your finger to the right a little."),
}

# edge/kiosk/cards.py reasons for refusing a read
CARD_ADVICE = {
    "unreadable": N_("Please scan your insurance code or insert your card again."),
    "checksum": N_("The number was not read completely. Please scan again."),
    "qr_token": N_("This code can only be read by the clerk. Please show it to the clerk."),
}

PURPOSES = {
    "registration": N_("Registration"),
    "admission": N_("Admission"),
    "billing": N_("Payment"),
    "pharmacy": N_("Pharmacy"),
    "bedside": N_("Ward check"),
}


@dataclass(frozen=True)
class ScreenText:
    tone: str
    title: str
    body: str = ""
    staff: str = ""  # a line for the clerk, shown smaller


SCREENS = {
    "present_card": ScreenText(
        INFO,
        N_("Please present your insurance card"),
        N_("Scan your medical insurance code or insert your social security card."),
    ),
    "card_not_read": ScreenText(WARN, N_("Your card could not be read")),
    "card_read": ScreenText(INFO, N_("Card read"), N_("One moment, please.")),
    "place_finger": ScreenText(
        INFO,
        N_("Please press your {finger} on the sensor"),
        N_("Press flat and keep still until the screen changes."),
    ),
    "reading": ScreenText(INFO, N_("Keep your finger still"), N_("Reading your fingerprint…")),
    "press_again": ScreenText(WARN, N_("Lift your finger and press again"), N_("Press your {finger} again.")),
    "lift_finger": ScreenText(INFO, N_("Lift your finger"), N_("Then press again.")),
    "match": ScreenText(OK, N_("Verified"), N_("Thank you. You may continue.")),
    "delegate_match": ScreenText(
        OK, N_("Verified: authorised to act for the card holder"), N_("Thank you. You may continue.")
    ),
    "no_match": ScreenText(
        BAD,
        N_("This fingerprint does not belong to this card's holder"),
        N_("Please stay at the desk. The clerk will keep the card and contact the insurance office."),
        N_("Staff: retain the card and call the insurance office."),
    ),
    "card_blocked": ScreenText(
        BAD,
        N_("This card cannot be used"),
        N_("Please stay at the desk. The clerk will keep the card and contact the insurance office."),
        N_("Staff: retain the card and call the insurance office."),
    ),
    "not_enrolled": ScreenText(
        WARN,
        N_("No fingerprint is registered for this card yet"),
        N_("Please show your ID card to the clerk, who can register your fingerprint."),
        N_("Staff: check the ID document; offer enrollment."),
    ),
    # The card is enrolled at another site (or not at all) and this station could not fetch it now:
    # the registry may well know the holder, so the patient is not told to enroll again.
    "not_enrolled_here": ScreenText(
        WARN,
        N_("This station cannot check this card right now"),
        N_("Please show your ID card to the clerk."),
        N_("Staff: the card is not registered at this site and could not be fetched; check the ID document."),
    ),
    "poor_quality": ScreenText(
        WARN,
        N_("Your fingerprint could not be read"),
        N_("Please do not worry. Show your ID card to the clerk instead."),
        N_("Staff: check the ID document."),
    ),
    "sensor_error": ScreenText(
        WARN,
        N_("The fingerprint reader is not working"),
        N_("Please show your ID card to the clerk instead."),
        N_("Staff: check the ID document; call IT if this continues."),
    ),
    "station_problem": ScreenText(
        WARN,
        N_("Fingerprints cannot be checked here right now"),
        N_("Please show your ID card to the clerk instead."),
        N_("Staff: check the ID document; call IT if this continues."),
    ),
    "cancelled": ScreenText(INFO, N_("The check was cancelled"), N_("Please wait for the clerk.")),
    # enrollment at the desk
    "consent": ScreenText(
        INFO,
        N_("May we register your fingerprints?"),
        N_(
            "Your fingerprints will be stored as encrypted templates, never as pictures, and used "
            "only to confirm that you are the holder of your insurance card at this hospital. "
            "You may refuse: you will then be served with your ID card."
        ),
    ),
    "enroll_press": ScreenText(INFO, N_("Please press your {finger}"), N_("Press {impression} of {of}.")),
    "enroll_again": ScreenText(
        WARN, N_("Lift your finger and press again"), N_("Press {impression} of {of}.")
    ),
    "enroll_lift": ScreenText(INFO, N_("Lift your finger"), N_("Press {impression} of {of} saved.")),
    "enrolled": ScreenText(
        OK, N_("Your fingerprints are registered"), N_("Thank you. Fingers registered: {count}.")
    ),
    "enroll_review": ScreenText(
        WARN,
        N_("Your registration was received"),
        N_("It will be checked by the insurance office before it is used."),
        N_("Staff: a similar fingerprint is on file; supervisors must review it."),
    ),
    "enroll_failed": ScreenText(
        WARN,
        N_("No fingerprint was registered"),
        N_("You can still be served with your ID card. The clerk will help you."),
        N_("Staff: the reason is in the HIS."),
    ),
}

ACTIONS = {"agree": N_("I agree"), "decline": N_("I do not agree")}

CHROME = {
    "page_title": N_("Identity check"),
    "online": N_("Connected"),
    "offline": N_("Offline: results are kept on this station"),
    "pending": N_("Results waiting to be sent: {count}"),
    "language": N_("Language"),
    "card_label": N_("Card number (typed by the reader)"),
}


# The clerk's shift (edge/kiosk/shift.py): the sign-in screen, and why a sign-in failed or a shift ended.
SHIFT_SCREENS = {
    "sign_in": ScreenText(
        INFO,
        N_("Clerk sign-in"),
        N_("Press your own finger on the sensor, or enter your operator ID and PIN."),
    ),
    "signing_in": ScreenText(INFO, N_("Press your finger on the sensor now"), N_("Keep it still until the screen changes.")),
}
SHIFT_NOTES = {
    "not_recognised": N_("Your fingerprint was not recognised. Try again or use your PIN."),
    "poor_press": N_("The press could not be read. Press flat and try again."),
    "no_finger": N_("No finger was felt on the sensor."),
    "sensor": N_("The fingerprint reader is not working. Use your PIN."),
    "no_staff": N_("No clerk of this site is known to this station yet. Ask the administrator."),
    "pin_wrong": N_("Operator ID or PIN not accepted."),
    "pin_locked": N_("Too many wrong PINs. Try again in {seconds} s."),
    "pin_off": N_("PIN sign-in is locked for this ID. Sign in with your finger or ask the administrator."),
    "pin_disabled": N_("PIN sign-in is not used at this station."),
    "timeout": N_("Your shift ended after a time without checks. Please sign in again."),
    "signed_out": N_("You have signed out."),
    "account_ended": N_("Your shift was ended: your account can no longer sign in here."),
    "busy": N_("The station is busy. Try again in a moment."),
}
SHIFT_LABELS = {
    "finger": N_("Sign in with my finger"),
    "operator": N_("Operator ID"),
    "pin": N_("PIN"),
    "submit": N_("Sign in with PIN"),
    "signout": N_("Sign out"),
    "who": N_("Clerk: {operator}"),
    "needed": N_("A clerk must sign in before checks can start."),
}


def render_shift(required: bool, operator: str | None, signing_in: bool, note: str | None,
                 retry_after: int | None, language: str | None) -> dict:
    """The shift part of the page: the sign-in screen when none is open, the clerk's name when one is."""
    t = CATALOGS.get(normalise_language(language)).gettext
    screen = None if operator else ("signing_in" if signing_in else "sign_in")
    text = SHIFT_SCREENS.get(screen) if screen else None
    notes = [t(SHIFT_NOTES[note]).format(seconds=retry_after or 0)] if note in SHIFT_NOTES else []
    if note == "pin_wrong" and retry_after:
        notes.append(t(SHIFT_NOTES["pin_locked"]).format(seconds=retry_after))
    return {
        "required": required,
        "open": operator is not None,
        "operator": operator or "",
        "screen": screen or "open",
        "title": t(text.title) if text else "",
        "body": t(text.body) if text else "",
        "note": " ".join(notes),
        "who": t(SHIFT_LABELS["who"]).format(operator=operator) if operator else "",
        "labels": {k: t(v) for k, v in SHIFT_LABELS.items() if k != "who"},
    }


@dataclass
class View:
    """One state of the screen, as codes (what the page is sent after translation)."""

    screen: str = "present_card"
    finger: int | None = None
    reasons: tuple[str, ...] = ()
    purpose: str | None = None
    attempt: int = 1
    impression: int | None = None
    of: int | None = None
    count: int | None = None


def render(view: View, online: bool | None, pending: int, language: str | None) -> dict:
    """The screen in one language: what the page shows, nothing else."""
    lang = normalise_language(language)
    t = CATALOGS.get(lang).gettext
    text = SCREENS[view.screen]
    finger = t(FINGERS.get(view.finger if view.finger is not None else 0, FINGERS[0]))
    advice = CARD_ADVICE if view.screen == "card_not_read" else PRESS_ADVICE
    hints = [t(advice[r]) for r in view.reasons if r in advice]
    status = t(CHROME["online"]) if online else t(CHROME["offline"])
    values = {"finger": finger, "impression": view.impression, "of": view.of, "count": view.count}
    actions = [{"id": k, "label": t(v)} for k, v in ACTIONS.items()] if view.screen == "consent" else []
    return {
        "screen": view.screen,
        "tone": text.tone,
        "lang": lang,
        "title": t(text.title).format(**values),
        "body": t(text.body).format(**values) if text.body else "",
        "actions": actions,
        "hints": hints,
        "staff": t(text.staff) if text.staff else "",
        "purpose": t(PURPOSES[view.purpose]) if view.purpose in PURPOSES else "",
        "online": bool(online),
        "pending": pending,
        "status": status,
        "pending_text": t(CHROME["pending"]).format(count=pending) if pending else "",
    }


def chrome(language: str | None) -> dict:
    lang = normalise_language(language)
    t = CATALOGS.get(lang).gettext
    return {
        "lang": lang,
        "html_lang": lang.replace("_", "-"),
        "languages": LANGUAGES,
        **{k: t(v) for k, v in CHROME.items()},
    }
