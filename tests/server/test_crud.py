"""Core domain rules, on SQLite and on PostgreSQL."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from fpverify.edge import wire
from fpverify.server import audit
from fpverify.server.core import auth
from fpverify.server.core.config import Settings
from fpverify.server.crud import approvals, devices, holders, stays, users
from fpverify.server.crud.errors import Conflict, Denied, Invalid
from fpverify.server.dedup import find_duplicate
from fpverify.server.ingest import feed
from fpverify.server.models import Site, Template, VerificationRecord

KEY = "test-national-id-key"


def checker(s, card, probes):
    return find_duplicate(s, card, probes, "fmr_1e-4")


@pytest.fixture
def db(any_db):
    return any_db  # migrated, on SQLite and on PostgreSQL


def upload(card: str, templates: list[bytes], role: str = "holder", delegate_id: str | None = None):
    return wire.EnrollmentUpload(
        enrollment_id=uuid.uuid4(), device_id="dev-1", card_number=card, operator_id="op-1", role=role,
        delegate_id=delegate_id,
        consent=wire.Consent(given_at=datetime.now(UTC), scope="fp", witnessed_by="op-1"),
        fingers=[wire.EnrolledFinger(finger=1, templates=templates, qualities=[80] * len(templates))])


def holder_with_consent(s, card: str) -> None:
    holders.create_holder(s, "enr", KEY, card, f"Holder {card}", f"ID{card}")
    holders.record_consent(s, "enr", card, datetime.now(UTC) - timedelta(minutes=1), "fingerprint", "op-1")


def test_enrollment_duplicate_four_eyes_feed_and_withdrawal(db):
    with db.session() as s:
        dev, _ = devices.create_device(s, "sys", "site-1", "dev-1", create_site_if_missing=True)
        sup1 = users.create_user(s, "sys", "sup1", "long enough pw", "supervisor")
        sup2 = users.create_user(s, "sys", "sup2", "long enough pw", "supervisor")
        enr = users.create_user(s, "sys", "enr1", "long enough pw", "enroller")
        holders.create_holder(s, "enr1", KEY, "C0001", "Zhang San", "110101199001011234")
        with pytest.raises(Conflict, match="consent"):
            holders.enroll(s, "enr1", upload("C0001", [b"x" * 20] * 3), checker)
        holders.record_consent(s, "enr1", "C0001", datetime.now(UTC), "fingerprint", "op-1")
        tA = [secrets.token_bytes(64) for _ in range(3)]
        out = holders.enroll(s, "enr1", upload("C0001", tA), checker)
        # per site (issue 18): the registry's log once, site-1 (enrolled there) once; the new
        # assignment sends a hold and the card status first
        assert out["status"] == "enrolled" and len(out["template_ids"]) == 3 and out["feed_version"] == 8
        holder_with_consent(s, "C0002")
        # one template equal to C0001's: a duplicate, held for two supervisors
        out2 = holders.enroll(s, "enr1", upload("C0002", [secrets.token_bytes(64), tA[1], secrets.token_bytes(64)]),
                              checker)
        assert out2["status"] == "pending_review"
        s.commit()
        f = feed.build_feed(s, dev, 0, 100)
        assert [c.op for c in f.changes] == ["hold", "card"] + ["add"] * 3
        assert {c.card_number for c in f.changes} == {"C0001"} and f.version == 8
        [appr] = approvals.list_approvals(s, "pending")
        with pytest.raises(Denied):
            approvals.approve(s, enr, appr.id)
        approvals.approve(s, sup1, appr.id)
        with pytest.raises(Conflict, match="second, different person"):
            approvals.approve(s, sup1, appr.id)
        assert appr.status == "pending"
        approvals.approve(s, sup2, appr.id)
        assert appr.status == "executed"
        s.commit()
        f = feed.build_feed(s, dev, 8, 100)
        assert [c.op for c in f.changes] == ["hold", "card"] + ["add"] * 3
        assert {c.card_number for c in f.changes} == {"C0002"} and f.version == 16
        # withdrawal purges every template of C0001 and tells the stations
        c, purged = holders.withdraw_consent(s, "enr1", "C0001")
        assert purged == 3
        s.commit()
        assert all(t.data is None for t in holders.list_templates(s, "C0001"))
        f = feed.build_feed(s, dev, 0, 100)
        assert [c.op for c in f.changes if c.card_number == "C0001"] == ["hold", "card"] + ["revoke"] * 3  # adds skipped: purged
        assert f.version == 22 and not f.more
        page = feed.build_feed(s, dev, 2, 2)
        assert page.more and page.version == 6 and page.changes == []  # purged adds skipped; device reads on
        with pytest.raises(Conflict):
            holders.enroll(s, "enr1", upload("C0001", tA), checker)
        assert audit.verify(s).ok


def test_unblock_needs_second_supervisor_and_delegates(db):
    with db.session() as s:
        dev, _ = devices.create_device(s, "sys", "site-1", "dev-1", create_site_if_missing=True)
        sup1 = users.create_user(s, "sys", "sup1", "long enough pw", "supervisor")
        sup2 = users.create_user(s, "sys", "sup2", "long enough pw", "supervisor")
        holder_with_consent(s, "C0003")
        holders.set_status(s, "sup1", "C0003", "blocked")
        a = approvals.request(s, sup1, "unblock_card", "C0003", "card returned after check")
        assert holders.get_holder(s, "C0003").status == "blocked"
        rejected = approvals.reject(s, sup2, a.id, "no")
        assert rejected.status == "rejected" and holders.get_holder(s, "C0003").status == "blocked"
        a = approvals.request(s, sup1, "unblock_card", "C0003", "second try")
        approvals.approve(s, sup2, a.id)
        assert holders.get_holder(s, "C0003").status == "active"
        s.commit()
        # not assigned to site-1 (nor any site) yet: its status changes go to no station
        assert [c for c in feed.build_feed(s, dev, 0, 100).changes if c.card_number == "C0003"] == []
        now = datetime.now(UTC)
        d = holders.add_delegate(s, "enr", KEY, "C0003", "Relative", "ID-REL", now, now + timedelta(days=30), "son")
        with pytest.raises(Invalid):
            holders.add_delegate(s, "enr", KEY, "C0003", "R", "ID", now, now - timedelta(days=1))
        out = holders.enroll(s, "enr", upload("C0003", [secrets.token_bytes(40)] * 3, "delegate", d.id), checker)
        assert out["status"] == "enrolled"
        s.commit()
        changes = feed.build_feed(s, dev, 0, 100).changes
        assert [(c.op, c.status) for c in changes if c.op == "card"] == [("card", "active")]
        adds = [c for c in changes if c.op == "add"]
        assert adds and all(c.role == "delegate" and c.delegate_id == d.id and c.valid_until for c in adds)
        # delete a template: four eyes again
        tid = out["template_ids"][0]
        a = approvals.request(s, sup1, "delete_template", tid, "wrong finger")
        approvals.approve(s, sup2, a.id)
        assert s.get(Template, tid).data is None


def test_login_freeze_and_tokens(db):
    settings: Settings = db.settings
    with db.session() as s:
        u = users.create_user(s, "sys", "alice", "long enough pw", "enroller")
        s.commit()
        _, tok = auth.login(s, settings, "10.0.0.1", "alice", "long enough pw")
        assert auth.user_for_token(s, tok).username == "alice"
        users.set_frozen(s, "admin", u.id, True)
        s.commit()
        assert auth.user_for_token(s, tok) is None  # existing tokens stop working
        with pytest.raises(auth.LoginFailed):  # a wrong password does not say "frozen"
            auth.login(s, settings, "10.0.0.1", "alice", "wrong")
        with pytest.raises(auth.AccountRefused, match="frozen"):
            auth.login(s, settings, "10.0.0.1", "alice", "long enough pw")
        with pytest.raises(auth.LoginFailed):
            auth.login(s, settings, "10.0.0.1", "nobody", "whatever")
        assert auth.user_for_token(s, "made-up") is None
        with pytest.raises(Denied):
            users.set_frozen(s, "alice", u.id, False)  # nobody unfreezes themselves
        with pytest.raises(Conflict):
            users.create_user(s, "sys", "alice", "long enough pw", "auditor")
        with pytest.raises(Invalid):
            users.create_user(s, "sys", "bob", "short", "auditor")


def test_account_operations_need_a_supervisor_other_than_the_requester_and_their_creations(db):
    with db.session() as s:
        admin = users.create_user(s, users.CONSOLE, "admin1", "long enough pw", "sysadmin")
        sup1 = users.create_user(s, users.CONSOLE, "sup1", "long enough pw", "supervisor")
        enr = users.create_user(s, users.CONSOLE, "enr1", "long enough pw", "enroller")
        with pytest.raises(Denied):
            approvals.request(s, sup1, "create_account", "x1", "r", "auditor")  # sysadmins file these
        a = approvals.request(s, admin, "create_account", "sup9", "new colleague", "supervisor")
        with pytest.raises(Denied):
            approvals.approve(s, admin, a.id)
        with pytest.raises(Denied):
            approvals.approve(s, enr, a.id)
        done, secret = approvals.approve(s, sup1, a.id)
        sup9 = users.by_name(s, "sup9")
        assert done.status == "executed" and secret and sup9.created_by == "admin1" and sup9.must_change_password
        b = approvals.request(s, admin, "set_role", str(enr.id), "promotion", "auditor")
        with pytest.raises(Denied, match="created it"):
            approvals.approve(s, sup9, b.id)
        with pytest.raises(Denied):
            approvals.request(s, admin, "set_role", str(admin.id), "mine", "auditor")
        with pytest.raises(Invalid):
            approvals.request(s, admin, "set_role", "abc", "bad target", "auditor")
        assert approvals.approve(s, sup1, b.id)[0].status == "executed" and enr.role == "auditor"
        s.commit()
        assert audit.verify(s).ok


def test_overdue_bedside_checks(db):
    now = datetime.now(UTC)
    with db.session() as s:
        s.add(Site(id="site-1", name="H1", created_at=now))
        for card in ("C1000", "C2000", "C3000"):
            holders.create_holder(s, "enr", KEY, card, card, "ID" + card)
        st_ok = stays.admit(s, "enr", "C1000", "site-1", now - timedelta(hours=30), "W1", "1", 24)
        st_late = stays.admit(s, "enr", "C2000", "site-1", now - timedelta(hours=30), "W1", "2", 24)
        stays.admit(s, "enr", "C3000", "site-1", now - timedelta(hours=2), "W1", "3", 24)
        with pytest.raises(Conflict):
            stays.admit(s, "enr", "C1000", "site-1", now, None, None, 24)

        def res(card, hours_ago, outcome="match", purpose="bedside"):
            return {"result_id": uuid.uuid4(), "device_id": "ward", "site_id": "site-1", "card_number": card,
                    "outcome": outcome, "purpose": purpose, "captured_at": now - timedelta(hours=hours_ago),
                    "received_at": now, "attempts": 1}

        s.execute(insert(VerificationRecord), [res("C1000", 3), res("C2000", 26), res("C2000", 1, "no_match"),
                                              res("C2000", 1, purpose="pharmacy")])
        s.commit()
        late = stays.overdue(s)
        assert [o.stay.id for o in late] == [st_late.id]
        assert late[0].last_check is not None and late[0].hours_overdue == pytest.approx(2, abs=0.1)
        stays.discharge(s, "enr", st_late.id)
        assert stays.overdue(s) == []
        assert st_ok.discharged_at is None
