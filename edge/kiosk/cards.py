"""What a card reader may type into the station, and the card number each form yields.

Keyboard-wedge readers type a line and Enter; the station cannot tell a barcode scanner from a card
reader, so each line is recognised by its shape. Accepted (docs/station.md, "Card in"):

1. Social-security number (社会保障号码 = the 18-character citizen number a 社保卡 reader types):
   17 digits and a check character (0-9 or X), whose ISO 7064 MOD 11-2 checksum must hold. A lower-case
   'x' is read as 'X'. A wrong checksum is a misread (a dropped or doubled digit), never a card.
2. Card number as the registry knows it (`edge.wire.CardNumber`): 4-32 letters, digits or '-'. An 18-digit
   line must pass the checksum, and a line of 17 or 19 digits (one digit dropped or doubled) is a misread.
3. QR payload (医保电子凭证 or a hospital's own code) that carries the number: a JSON object or a
   `key=value` list (separated by '&', ';' or '|', optionally after a `...?`) with one of the keys
   cardNo, card_no, cardNumber, card_number, card, ssn, idNo. The value must itself be form 1 or 2.
   The national 医保电子凭证's dynamic code is an opaque, short-lived token that only the insurance
   platform decodes (online, through the HIS's insurance interface): the station refuses it with
   "show the code to the clerk", and the HIS, once it has decoded it, starts the check itself.

Anything else (control characters, an empty line, an unknown shape) is "card not read: scan again".
Nothing is recorded for a bad read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

from fpverify.edge.workflow import normalise_card

SSN_RE = re.compile(r"^\d{17}[\dX]$")
CARD_KEYS = ("cardno", "card_no", "cardnumber", "card_number", "card", "ssn", "idno")
MAX_LINE = 2048  # a QR payload longer than this is not one of ours

# Why a read was refused: the page shows a patient's wording for each (edge/kiosk/texts.py).
UNREADABLE = "unreadable"  # empty, control characters, unknown shape
CHECKSUM = "checksum"  # looked like a social-security number, but a digit was misread
QR_TOKEN = "qr_token"  # a code only the insurance platform can decode: the clerk scans it in the HIS


class BadRead(ValueError):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class CardRead:
    card_number: str
    form: str  # "ssn", "card", "qr"


def ssn_check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2, as GB 11643 defines the citizen number's last character."""
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(int(d) * w for d, w in zip(first17, weights, strict=True))
    return "10X98765432"[total % 11]


def parse_card(text: str) -> CardRead:
    """The card number in one line from a reader, or BadRead saying why it is not one."""
    line = (text or "").strip()
    if not line or len(line) > MAX_LINE or any(ord(c) < 32 or ord(c) == 127 for c in line):
        raise BadRead(UNREADABLE, "empty line or control characters")
    number = _number(line)
    if number is not None:
        return CardRead(number, "ssn" if SSN_RE.match(number) else "card")
    value = _qr_value(line)
    if value is None:
        if len(line) > 32:
            raise BadRead(QR_TOKEN, "a code that only the insurance platform can decode (scan it in the HIS)")
        raise BadRead(UNREADABLE, "not a card number, social-security number or known QR payload")
    number = _number(value.strip())
    if number is None:
        raise BadRead(UNREADABLE, "the QR payload's card number is malformed")
    return CardRead(number, "qr")


def _number(line: str) -> str | None:
    """Form 1 or 2, or None. A checksum failure is BadRead(CHECKSUM)."""
    candidate = line.upper() if re.fullmatch(r"\d{17}[xX]", line) else line
    if re.fullmatch(r"\d{17}[\dX]", candidate):
        if ssn_check_char(candidate[:17]) != candidate[17]:
            raise BadRead(CHECKSUM, "social-security number with a wrong check character (misread)")
        return candidate
    if re.fullmatch(r"\d{16}[\dxX]|\d{18}[\dxX]", candidate):
        raise BadRead(CHECKSUM, f"{len(candidate)} characters: a social-security number has 18 (misread)")
    try:
        return normalise_card(candidate)
    except ValueError:
        return None


def _qr_value(line: str) -> str | None:
    pairs: list[tuple[str, str]] = []
    if line.startswith("{"):
        try:
            obj = json.loads(line)
        except ValueError:
            return None
        if isinstance(obj, dict):
            pairs = [(str(k), v) for k, v in obj.items() if isinstance(v, str)]
    elif "=" in line:
        query = line.split("?", 1)[1] if "?" in line else line
        for part in re.split(r"[&;|]", query):
            pairs.extend(parse_qsl(part, keep_blank_values=True))
    for key, value in pairs:
        if key.strip().lower() in CARD_KEYS:
            return value
    return None
