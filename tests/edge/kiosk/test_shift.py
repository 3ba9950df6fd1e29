"""The clerk's shift at a desk that requires one (real Station, simulated sensor on a pty driving the
real pyfingerprint, the real matcher, the encrypted store): no check without a shift; the clerk's
finger opens it and a patient's does not; a clerk's finger never verifies a patient's card; every
result carries the signed-in clerk, not the id the HIS typed; the PIN fallback and its limits; the
timeout; sign-out; a freeze from the registry's staff list ends the shift and refuses the clerk."""

from __future__ import annotations

import httpx
import pytest

from fpverify.edge.sync import SyncError
from tests.edge.helpers import HOLDER, STRANGER
from tests.edge.kiosk.helpers import HIS_TOKEN, close_desk
from tests.edge.kiosk.shift_helpers import (
    CLERK,
    CLERK2,
    PIN,
    PIN2,
    clerk_fingers,
    later,
    make_shift_desk,
    sign_in_finger,
    sign_in_pin,
    staff_feed,
)

AUTH = {"Authorization": f"Bearer {HIS_TOKEN}"}


@pytest.fixture(scope="module")
def clerks():
    return clerk_fingers()


@pytest.fixture(scope="module")
def sdesk(tmp_path_factory, matcher_feed, clerks):
    d = make_shift_desk(tmp_path_factory.mktemp("shift-desk"), matcher_feed, staff_feed(clerks))
    yield d
    close_desk(d)


@pytest.fixture(autouse=True)
def signed_out(sdesk):
    sdesk.station.shift.sign_out()
    for name in ("clerk.wang", "clerk.li", "nobody"):
        sdesk.station.staff.set_pin_failures(name, 0, None)
    yield
    sdesk.station.shift.sign_out()


def his_check(desk, operator="typed-in-his-99", card="CARD0042"):
    with httpx.Client(base_url=desk.his, headers=AUTH, timeout=40) as c:
        r = c.post("/his/v1/verifications", json={"card": card, "operator_id": operator, "purpose": "registration"})
        if r.status_code != 201:
            return r
        return c.get(f"/his/v1/verifications/{r.json()['id']}", params={"wait_s": 30})


def page(desk, lang="zh_CN"):
    return httpx.get(desk.url + "/state", params={"lang": lang}, timeout=10).json()


def test_no_check_without_a_shift(sdesk):
    before = len(sdesk.station.outbox.history_ids())
    r = his_check(sdesk)
    assert r.status_code == 409 and r.json()["reason"] == "no_shift"
    r = httpx.post(sdesk.url + "/card", json={"text": "CARD0042"}, timeout=10)
    assert r.status_code == 409 and r.json()["reason"] == "no_shift"
    assert sdesk.station.handle_card("CARD0042") is None  # the card reader's path refuses too
    assert len(sdesk.station.outbox.history_ids()) == before  # nothing checked, nothing recorded
    zh, en = page(sdesk)["shift"], page(sdesk, "en")["shift"]
    assert (zh["screen"], zh["title"], zh["open"]) == ("sign_in", "工作人员签到", False)
    assert en["title"] == "Clerk sign-in" and en["labels"]["submit"] == "Sign in with PIN"


def test_clerk_finger_opens_the_shift_and_results_carry_the_clerk(sdesk, clerks, fingers):
    got = sign_in_finger(sdesk, clerks[CLERK][3])
    assert got == {"state": "done", "error": None, "operator": "clerk.wang"}
    assert sdesk.station.shift.current().method == "finger"
    assert page(sdesk)["shift"]["who"] == "当班：clerk.wang"
    # the HIS types another id: the result carries the authenticated clerk
    sdesk.hand.queue(fingers[HOLDER][3])
    body = his_check(sdesk, operator="typed-in-his-99").json()
    assert body["outcome"] == "match" and body["result"]["operator_id"] == "clerk.wang"
    # the clerk's own finger on a patient's card is a stranger's finger: never a verification
    sdesk.hand.queue(clerks[CLERK][3])
    body = his_check(sdesk).json()
    assert body["outcome"] == "no_match" and body["result"]["operator_id"] == "clerk.wang"
    status = httpx.get(sdesk.his + "/his/v1/status", headers=AUTH, timeout=10).json()
    assert status["operator"] == "clerk.wang" and status["shift_required"] is True
    # the clerks' templates are nowhere in the patients' set
    assert sdesk.station.store.templates_for("clerk.wang") == []
    assert {t.template_id for t in sdesk.station.store.templates_for("CARD0042")}.isdisjoint(
        {t.template_id for t in sdesk.station.staff.templates()})
    # sign-out: checks are refused again
    assert httpx.post(sdesk.url + "/shift/signout", timeout=10).json() == {"open": False}
    assert his_check(sdesk).status_code == 409
    assert page(sdesk, "en")["shift"]["note"] == "You have signed out."


def test_a_patient_finger_does_not_open_a_shift(sdesk, fingers, clerks):
    for image in (fingers[HOLDER][3], fingers[STRANGER][2]):
        got = sign_in_finger(sdesk, image)
        assert got == {"state": "failed", "error": "not_recognised", "operator": None}
    assert page(sdesk)["shift"]["note"] == "未能识别您的指纹。请再试一次，或使用 PIN 码。"
    # the second clerk's finger opens it for the second clerk, not the first
    assert sign_in_finger(sdesk, clerks[CLERK2][3])["operator"] == "clerk.li"


def test_pin_fallback_waits_and_then_locks(sdesk, clerks):
    st = sdesk.station
    # an unknown id and a wrong PIN get the same answer
    for who, pin in (("nobody", PIN), ("clerk.wang", PIN2)):
        r = sign_in_pin(sdesk, who, pin)
        assert r.status_code == 401 and r.json()["reason"] == "pin_wrong", r.text
    sign_in_pin(sdesk, "clerk.wang", "000001")
    third = sign_in_pin(sdesk, "clerk.wang", "000002")  # the third in a row starts the wait
    assert third.status_code == 401 and third.json()["retry_after"] == 30
    locked = sign_in_pin(sdesk, "clerk.wang", PIN)  # the right PIN is not even checked while it lasts
    assert locked.status_code == 429 and locked.json()["reason"] == "pin_locked" and int(locked.headers["retry-after"]) > 0
    assert st.shift.operator() is None
    assert "秒后再试" in page(sdesk)["shift"]["note"]
    # the other clerk is not slowed by it
    assert sign_in_pin(sdesk, "clerk.li", PIN2).json() == {"opened": True, "operator": "clerk.li"}
    st.shift.sign_out()
    # the wait over (as after 30 s), the right PIN opens the shift and clears the count
    failures, _ = st.staff.pin_failures("clerk.wang")
    st.staff.set_pin_failures("clerk.wang", failures, None)
    assert sign_in_pin(sdesk, "clerk.wang", PIN).status_code == 200
    assert st.shift.current().method == "pin" and st.staff.pin_failures("clerk.wang") == (0, None)
    st.shift.sign_out()
    # pin_max_failures (6) in a row: the PIN is off, even the right one, until a finger sign-in
    st.staff.set_pin_failures("clerk.wang", 5, None)
    assert sign_in_pin(sdesk, "clerk.wang", "999990").json()["reason"] == "pin_off"
    assert sign_in_pin(sdesk, "clerk.wang", PIN).json()["reason"] == "pin_off"
    assert sign_in_finger(sdesk, clerks[CLERK][2])["operator"] == "clerk.wang"
    st.shift.sign_out()
    assert sign_in_pin(sdesk, "clerk.wang", PIN).status_code == 200


def test_timeout_ends_the_shift(sdesk):
    shift = sdesk.station.shift
    now = [1000.0]
    shift.clock = lambda: now[0]
    try:
        assert sign_in_pin(sdesk, "clerk.li", PIN2).status_code == 200
        now[0] += 599
        assert shift.operator() == "clerk.li"
        shift.touch()  # a check was made: the idle time starts again
        now[0] += 599
        assert shift.operator() == "clerk.li"
        now[0] += 2
        assert shift.operator() is None and shift.note == "timeout"
        assert his_check(sdesk).status_code == 409
        assert page(sdesk, "en")["shift"]["note"].startswith("Your shift ended after a time without checks")
    finally:
        import time

        shift.clock = time.monotonic


def test_a_freeze_from_the_registry_ends_the_shift_and_refuses_the_clerk(sdesk, clerks, tmp_path):
    st = sdesk.station
    active = staff_feed(clerks)
    st.staff.apply(active, "site-a")
    assert sign_in_pin(sdesk, "clerk.wang", PIN).status_code == 200
    frozen = staff_feed(clerks, frozen=("clerk.wang",), at=later(active))
    st.shift.roster_changed(st.staff.apply(frozen, "site-a"))  # what StaffSync does after a pull
    assert st.shift.operator() is None and st.shift.note == "account_ended"
    assert st.staff.member("clerk.wang").status == "frozen"
    # the frozen clerk tries the PIN, then the finger: refused, with the answer a wrong PIN gets
    r = sign_in_pin(sdesk, "clerk.wang", PIN)
    assert r.status_code == 401 and r.json()["reason"] == "pin_wrong"
    assert sign_in_finger(sdesk, clerks[CLERK][3])["error"] == "not_recognised"
    # a replayed older list (the clerk active again) is refused and changes nothing
    with pytest.raises(SyncError, match="older"):
        st.staff.apply(active, "site-a")
    with pytest.raises(SyncError, match="site"):
        st.staff.apply(staff_feed(clerks, at=later(frozen), site="site-b"), "site-a")
    assert st.staff.member("clerk.wang").status == "frozen"
    # the other clerk still works
    assert sign_in_finger(sdesk, clerks[CLERK2][3])["operator"] == "clerk.li"
    st.staff.apply(staff_feed(clerks, at=later(frozen, 2)), "site-a")  # unfrozen at the registry
