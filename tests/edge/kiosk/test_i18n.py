"""The kiosk's catalogs: every message marked in the source has a Chinese translation with the same
placeholders, the page text is Chinese first, and a damaged catalog is a clear error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po

from fpverify.edge.kiosk import texts
from fpverify.edge.kiosk.texts import SCREENS, View, render
from fpverify.i18n import CatalogError, Catalogs, normalise_language

PO = Path(texts.__file__).resolve().parent.parent / "locale" / "zh_CN" / "LC_MESSAGES" / "kiosk.po"


def marked_messages() -> set[str]:
    return {m[1] for m in extract_from_file("python", texts.__file__, keywords={"N_": None})}


def test_every_marked_message_is_translated_with_the_same_placeholders():
    with PO.open("rb") as f:
        catalog = read_po(f)
    translated = {m.id: m for m in catalog if m.id}
    marked = marked_messages()
    assert len(marked) > 50
    missing = sorted(marked - set(translated))
    assert not missing, f"add to {PO}: {missing}"
    for msgid in marked:
        m = translated[msgid]
        assert m.string and not m.fuzzy, msgid
        assert re.findall(r"\{\w+\}", msgid) == re.findall(r"\{\w+\}", m.string), msgid
        assert re.search(r"[\u4e00-\u9fff]", m.string), f"not Chinese: {msgid!r} -> {m.string!r}"
    assert not set(translated) - marked, "stale messages in the catalog"


@pytest.mark.parametrize("screen", sorted(SCREENS))
def test_every_screen_renders_in_both_languages(screen):
    view = View(screen, finger=2, reasons=("small_area",), impression=1, of=3, count=2)
    zh, en = render(view, False, 2, "zh-CN"), render(view, True, 0, "en")
    assert re.search(r"[\u4e00-\u9fff]", zh["title"]) and not re.search(r"[\u4e00-\u9fff]", en["title"])
    for text in (zh["title"] + zh["body"], en["title"] + en["body"]):
        assert "{" not in text and "None" not in text
    assert zh["pending_text"] == "待上传结果：2 条" and zh["status"].startswith("离线")
    assert en["status"] == "Connected" and en["pending_text"] == ""


def test_patient_wording_for_a_mismatch_and_a_poor_press():
    no = render(View("no_match"), True, 0, "zh_CN")
    assert no["tone"] == "bad" and "扣留" in no["staff"] and "医保办" in no["staff"]
    poor = render(
        View("press_again", finger=7, reasons=("low_contrast", "small_area", "move_up")), True, 0, "zh_CN"
    )
    assert "左手食指" in poor["body"] and poor["hints"] == [
        "按得太轻：请稍微用力按。",
        "按得太少：请把手指肚平放在感应区上，不要只用指尖。",
        "请把手指往上移一点。",
    ]


def test_language_names_and_a_damaged_catalog(tmp_path):
    assert normalise_language("zh-CN") == normalise_language(None) == normalise_language("fr") == "zh_CN"
    assert normalise_language("en-US") == "en"
    bad = tmp_path / "zh_CN" / "LC_MESSAGES"
    bad.mkdir(parents=True)
    (bad / "x.po").write_bytes(b'msgid "a"\nmsgstr "b\n\x00\xff')
    with pytest.raises(CatalogError, match="cannot read message catalog"):
        Catalogs("x", tmp_path).get("zh_CN")
    assert Catalogs("x", tmp_path).gettext("en", "Hello {name}", name="A") == "Hello A"
