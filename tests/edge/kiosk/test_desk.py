"""The desk through its HIS API and its kiosk page (HTTP, no browser): a match, a borrowed card, a
poor press then a good one, a sensor pulled out, a cancel, a busy desk, bad tokens and bad reads."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

from tests.edge.helpers import DELEGATE, HOLDER, STRANGER
from tests.edge.kiosk.helpers import HIS_TOKEN, UNPLUG, tip_only

AUTH = {"Authorization": f"Bearer {HIS_TOKEN}"}


@pytest.fixture
def his(desk):
    with httpx.Client(base_url=desk.his, headers=AUTH, timeout=40) as c:
        yield c


def start(his, card="CARD0042", purpose="registration", operator="clerk-07"):
    r = his.post("/his/v1/verifications", json={"card": card, "operator_id": operator, "purpose": purpose})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def outcome(his, job_id):
    r = his.get(f"/his/v1/verifications/{job_id}", params={"wait_s": 30})
    assert r.status_code == 200
    body = r.json()
    assert body["state"] in ("done", "cancelled", "failed", "card_not_read"), body
    return body


def page_state(desk, lang="zh_CN"):
    return httpx.get(desk.url + "/state", params={"lang": lang}, timeout=10).json()


@pytest.mark.slow
def test_his_checks_match_borrowed_card_and_delegate(desk, his, fingers):
    before = len(desk.station.outbox.history_ids())
    desk.hand.queue(fingers[HOLDER][3])
    ok = outcome(his, start(his, purpose="admission"))
    assert ok["outcome"] == "match" and ok["result"]["purpose"] == "admission"
    assert ok["result"]["operator_id"] == "clerk-07" and ok["message"] == "verified"
    assert ok["message_zh"] == "核验通过"
    zh, en = page_state(desk), page_state(desk, "en")
    assert (zh["screen"], zh["tone"], zh["title"]) == ("match", "ok", "核验通过")
    assert en["title"] == "Verified" and en["purpose"] == "Admission"

    desk.hand.queue(fingers[STRANGER][1])
    bad = outcome(his, start(his, purpose="pharmacy"))
    assert bad["outcome"] == "no_match" and "retain the card" in bad["message"]
    zh = page_state(desk)
    assert zh["tone"] == "bad" and "扣留" in zh["staff"] and zh["purpose"] == "取药"
    assert "CARD0042" not in json.dumps(zh, ensure_ascii=False)  # no card number on the patient's screen

    desk.hand.queue(fingers[DELEGATE][3])
    assert outcome(his, start(his))["outcome"] == "delegate_match"
    ids = desk.station.outbox.history_ids()[before:]
    assert ids == [ok["result_id"], bad["result_id"], ids[2]]  # each check recorded once


def test_poor_press_then_a_good_one_with_live_advice(desk, his, fingers):
    views = []
    desk.display.on_view = views.append
    try:
        desk.hand.queue(tip_only(fingers[HOLDER][2]), fingers[HOLDER][3])
        done = outcome(his, start(his))
    finally:
        desk.display.on_view = None
    assert done["outcome"] == "match" and done["result"]["attempts"] == 2
    screens = [v.screen for v in views]
    assert screens[:2] == ["card_read", "place_finger"] and views[1].finger == 2  # the enrolled finger
    again = next(v for v in views if v.screen == "press_again")
    assert "small_area" in again.reasons and "move_up" in again.reasons
    assert screens.index("reading") < screens.index("press_again") < screens.index("match")


@pytest.mark.slow
def test_sensor_pulled_out_then_back(desk, his, fingers):
    desk.hand.queue(UNPLUG)
    r = outcome(his, start(his))
    assert r["outcome"] == "sensor_error"
    assert page_state(desk, "en")["title"] == "The fingerprint reader is not working"
    threading.Event().wait(3.5)  # plugged back in
    desk.hand.queue(fingers[HOLDER][3])
    assert outcome(his, start(his))["outcome"] == "match"


def test_cancel_while_waiting_for_the_finger_records_nothing(desk, his):
    before = desk.station.outbox.history_ids()
    job = start(his)
    busy = his.post(
        "/his/v1/verifications", json={"card": "CARD0042", "operator_id": "x", "purpose": "billing"}
    )
    assert busy.status_code == 409 and busy.json()["current"] == job
    threading.Event().wait(0.5)
    r = his.delete(f"/his/v1/verifications/{job}")
    assert r.status_code == 200 and r.json()["state"] == "cancelled" and r.json()["outcome"] is None
    assert desk.station.outbox.history_ids() == before
    assert page_state(desk, "en")["screen"] == "cancelled"


def test_bad_requests_get_clear_answers(desk, his):
    before = desk.station.outbox.history_ids()
    for headers in ({}, {"Authorization": "Bearer wrong-token-0000000000"}, {"Authorization": HIS_TOKEN}):
        r = httpx.post(
            desk.his + "/his/v1/verifications",
            headers=headers,
            timeout=10,
            json={"card": "CARD0042", "operator_id": "x", "purpose": "billing"},
        )
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = his.post(
        "/his/v1/verifications", json={"card": "11010519491231002", "operator_id": "x", "purpose": "billing"}
    )
    assert r.status_code == 422 and r.json()["reason"] == "checksum"
    r = his.post("/his/v1/verifications", json={"card": "CARD0042", "operator_id": "x", "purpose": "lunch"})
    assert r.status_code == 422
    assert his.get("/his/v1/verifications/nope").status_code == 404
    assert his.get("/his/v1/status").json()["busy"] is False
    assert desk.station.outbox.history_ids() == before


def test_page_card_line_bad_read_then_good(desk, fingers):
    before = len(desk.station.outbox.history_ids())
    r = httpx.post(desk.url + "/card", json={"text": "11010519491231002"}, timeout=10)
    assert r.json() == {"accepted": False, "reason": "checksum"}
    st = page_state(desk)
    assert st["screen"] == "card_not_read" and st["hints"] == ["号码没有读完整，请重新刷卡或扫码。"]
    r = httpx.post(
        desk.url + "/card", json={"text": "CARD0042"}, timeout=10, headers={"Origin": "http://evil.example"}
    )
    assert r.status_code == 403
    desk.hand.outcome_seen.clear()
    desk.hand.queue(fingers[HOLDER][3])
    r = httpx.post(desk.url + "/card", json={"text": "CARD0042"}, timeout=10)
    assert r.status_code == 202
    assert desk.hand.outcome_seen.wait(30) and desk.hand.outcomes[-1] == "match"
    assert len(desk.station.outbox.history_ids()) >= before + 1


def test_events_stream_pushes_each_change(desk, fingers):
    """The stream sends the screen as it is whenever it changes (states a few ms apart may merge into
    the latest, as the page would show them): the prompt, the reading, the outcome all arrive."""
    seen = []
    desk.hand.delay_s = 0.5  # the prompt stays up until the finger comes
    with httpx.stream("GET", desk.url + "/events", params={"lang": "en"}, timeout=30) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if not line.startswith("data: "):
                continue
            seen.append(json.loads(line[6:]))
            if len(seen) == 1:
                desk.hand.queue(fingers[HOLDER][3])
                assert (
                    httpx.post(desk.url + "/card", json={"text": "CARD0042"}, timeout=10).status_code == 202
                )
            if seen[-1]["screen"] == "match" and len(seen) > 2:
                break
    desk.hand.delay_s = 0.0
    screens = [s["screen"] for s in seen[1:]]
    assert {"place_finger", "reading"} <= set(screens) and screens[-1] == "match"
    assert screens.index("place_finger") < screens.index("reading")
    assert all(set(s) >= {"title", "tone", "status", "pending"} for s in seen)
    assert not any(k in s for s in seen for k in ("image", "template", "card_number"))


def test_the_documented_example_client_and_openapi_file(desk, fingers, capsys):
    """docs/his/his_client.py works against the desk; docs/his/openapi.json is the API as served."""
    import importlib.util

    from fpverify.edge.kiosk.his import openapi_document
    from tests.helpers import ROOT

    spec = importlib.util.spec_from_file_location("his_client", ROOT / "docs" / "his" / "his_client.py")
    client = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(client)
    desk.hand.queue(fingers[HOLDER][3])
    code = client.main(
        [
            "--station",
            desk.his,
            "--token-file",
            str(desk.folder / "his.token"),
            "--card",
            "CARD0042",
            "--operator",
            "clerk-07",
            "--purpose",
            "bedside",
        ]
    )
    printed = json.loads(capsys.readouterr().out)
    assert code == 0 and printed["state"] == "done" and printed["outcome"] == "match"
    with pytest.raises(client.StationError) as info:
        client.HisClient(desk.his, "wrong-token-0123456789").start("CARD0042", "x", "billing")
    assert info.value.status == 401
    served = httpx.get(desk.his + "/his/v1/openapi.json", timeout=10).json()
    committed = json.loads((ROOT / "docs" / "his" / "openapi.json").read_text())
    assert committed == served == json.loads(openapi_document()), "run: fpverify edge his-openapi"
