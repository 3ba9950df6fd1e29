"""Card input formats (edge/kiosk/cards.py): each accepted form, and misreads refused with a reason."""

from __future__ import annotations

import pytest

from fpverify.edge.kiosk.cards import CHECKSUM, QR_TOKEN, UNREADABLE, BadRead, parse_card, ssn_check_char

SSN = "11010519491231002X"  # the GB 11643 example number: its check character is X


def test_check_character_of_the_standard_example():
    assert ssn_check_char(SSN[:17]) == "X"


@pytest.mark.parametrize(
    "line, number, form",
    [
        (SSN + "\n", SSN, "ssn"),
        (SSN.lower(), SSN, "ssn"),  # a reader in lower-case mode
        ("  CARD0042\r\n", "CARD0042", "card"),
        ("DEMO-1001", "DEMO-1001", "card"),
        ("A12345678", "A12345678", "card"),  # a 社保卡 card number
        ('{"cardNo": "DEMO-1001", "name": "x"}', "DEMO-1001", "qr"),
        ("https://hospital.example/visit?org=1&card_no=CARD0042", "CARD0042", "qr"),
        (f"ver=1|ssn={SSN}|t=1700000000", SSN, "qr"),
    ],
)
def test_accepted_forms(line, number, form):
    read = parse_card(line)
    assert (read.card_number, read.form) == (number, form)


@pytest.mark.parametrize(
    "line, reason",
    [
        ("", UNREADABLE),
        ("   \n", UNREADABLE),
        ("12", UNREADABLE),
        ("CARD\x1b[0042", UNREADABLE),
        ("卡号0042", UNREADABLE),
        ("CARD 0042", UNREADABLE),
        (SSN[:-1] + "3", CHECKSUM),  # one character misread
        (SSN[:10] + SSN[11:], CHECKSUM),  # a digit dropped: 17 characters
        ("110105194912310021" + "5", CHECKSUM),  # a digit doubled: 19
        ('{"cardNo": "12"}', UNREADABLE),
        ('{"cardNo": 42}', UNREADABLE),
        ("{not json", UNREADABLE),
        ("card_no=" + SSN[:-1] + "1", CHECKSUM),
        ("hQR:7A0E6E8C4B1D4F2A9C3B5E7D1F0A2C4E6B8D0F1A3C5E7", QR_TOKEN),  # the insurance platform's token
        ("x" * 5000, UNREADABLE),
    ],
)
def test_misreads_are_refused_with_a_reason(line, reason):
    with pytest.raises(BadRead) as info:
        parse_card(line)
    assert info.value.reason == reason
