"""Duplicate check with the real matcher, on SQLite and the private PostgreSQL: another impression of
an enrolled finger on a different card is held for two supervisors; a different finger is enrolled;
undecodable templates are 422. The in-memory index follows the feed (adds, revokes), a restarted
process rebuilds the same index, and a failing matcher fails the check instead of passing it."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from fpverify import matcher
from fpverify.matcher import synth
from fpverify.server import dedup
from fpverify.server.crud import holders
from fpverify.server.db import Database
from fpverify.server.models import Template
from tests.server.helpers import auth, make_settings, upload_body

P = "/api/v1"


@pytest.fixture(scope="module")
def templates():
    f1, f2 = synth.generate_finger(11), synth.generate_finger(12)
    a = [matcher.extract(synth.impression(f1, k, seed=0)[0]).to_bytes() for k in range(4)]
    b = [matcher.extract(synth.impression(f2, k, seed=0)[0]).to_bytes() for k in range(3)]
    return a, b


@pytest.fixture
def db(any_url):  # both engines: the index reads the feed and the templates through each
    d = Database(settings=make_settings(any_url))
    d.migrate()
    yield d
    d.dispose()


@pytest.fixture
def app(db):  # the app under test checks templates with the matcher
    from fpverify.server.app import create_app

    db.settings.validate_templates = True
    return create_app(db.settings, db)


def holder(client, tokens, card):
    enr = auth(tokens["enroller"])
    assert client.post(f"{P}/cardholders", json={"card_number": card, "name": "N", "national_id": "ID" + card},
                       headers=enr).status_code == 201
    assert client.post(f"{P}/cardholders/{card}/consents", headers=enr,
                       json={"given_at": "2024-05-01T08:00:00+08:00", "scope": "fp", "witnessed_by": "op"}
                       ).status_code == 201


def test_one_to_n_duplicate_and_validation(client, tokens, templates):
    a, b = templates
    enr = auth(tokens["enroller"])
    for card in ("C7001", "C7002", "C7003"):
        holder(client, tokens, card)
    r = client.post(f"{P}/enrollments", json=upload_body("C7001", templates=a[:3]), headers=enr)
    assert r.status_code == 201 and r.json()["status"] == "enrolled", r.text
    # a different impression of the same finger (not byte-identical) under another card
    r = client.post(f"{P}/enrollments", json=upload_body("C7002", templates=[a[3], b[0], b[1]]), headers=enr)
    assert r.status_code == 201 and r.json()["status"] == "pending_review", r.text
    [appr] = client.get(f"{P}/approvals?status=pending", headers=auth(tokens["supervisor"])).json()
    assert "C7001" in appr["reason"] and appr["action"] == "override_duplicate"
    # another person's finger is not a duplicate
    r = client.post(f"{P}/enrollments", json=upload_body("C7003", templates=b), headers=enr)
    assert r.status_code == 201 and r.json()["status"] == "enrolled", r.text
    r = client.post(f"{P}/enrollments", json=upload_body("C7003", templates=[b"not a template"] * 3), headers=enr)
    assert r.status_code == 422 and "cannot be decoded" in r.text


def test_duplicate_threshold_score_replaces_the_operating_point(app, client, tokens, templates, db):
    """settings.duplicate_threshold_score decides instead of duplicate_threshold's named point (the
    demo's synthetic fingers need a stricter one); out-of-range values are refused."""
    import pydantic

    from fpverify.server.app import create_app

    a, _ = templates
    holder(client, tokens, "C7101")
    r = client.post(f"{P}/enrollments", json=upload_body("C7101", templates=a[:3]), headers=auth(tokens["enroller"]))
    assert r.status_code == 201 and r.json()["status"] == "enrolled", r.text
    strict = create_app(db.settings.model_copy(update={"duplicate_threshold_score": 1.0}), db)
    with db.session() as s:
        hit = app.state.duplicate_checker(s, "C7102", [a[3]])
        assert hit is not None and hit.card_number == "C7101" and hit.score < 1.0
        assert strict.state.duplicate_checker(s, "C7102", [a[3]]) is None
    for bad in (0.0, 1.5, float("nan")):
        with pytest.raises(pydantic.ValidationError, match="duplicate_threshold_score"):
            type(db.settings)(duplicate_threshold_score=bad)


def enroll(client, tokens, card, templates):
    r = client.post(f"{P}/enrollments", json=upload_body(card, templates=templates), headers=auth(tokens["enroller"]))
    assert r.status_code == 201, r.text
    return r.json()


def first_enrolled(client, tokens, cards, templates):
    """Register every card; enroll the first with `templates` (it must not be a duplicate)."""
    for card in cards:
        holder(client, tokens, card)
    assert enroll(client, tokens, cards[0], templates)["status"] == "enrolled"


def test_index_follows_the_feed_and_a_restart_rebuilds_it(app, client, tokens, templates, db):
    a, b = templates
    first_enrolled(client, tokens, ("C7201", "C7202", "C7203"), a[:3])
    with db.session() as s:
        idx = dedup.index_for(s)
        idx.refresh(s)
        built, version = idx.rebuild_s, idx.version
        assert len(idx) == 3 and version == dedup.feed.current_version(s)
    assert enroll(client, tokens, "C7202", b)["status"] == "enrolled"
    with db.session() as s:
        idx.refresh(s)
        assert len(idx) == 6 and idx.rebuild_s == built and idx.version > version  # read the feed only
        ids = list(s.scalars(select(Template.id).where(Template.card_number == "C7201")))
        for tid in ids:
            holders.revoke_template(s, "sup", tid, "consent withdrawn")
        s.commit()
    with db.session() as s:
        idx.refresh(s)
        assert len(idx) == 3 and not any(t in idx.gallery for t in ids)
        # the revoked finger is no longer a duplicate of a new card
        assert dedup.find_duplicate(s, "C7203", [a[3]], "fmr_1e-4") is None
        # another impression of C7202's finger is, and a restarted process finds the same
        hit = dedup.find_duplicate(s, "C7203", [matcher.extract(synth.impression(synth.generate_finger(12), 5,
                                                                                   seed=0)[0]).to_bytes()], "fmr_1e-4")
        assert hit is not None and hit.card_number == "C7202" and hit.score >= matcher.THRESHOLDS["fmr_1e-4"]
        fresh = dedup.DuplicateIndex()
        fresh.refresh(s)
        assert sorted(fresh.gallery.keys) == sorted(idx.gallery.keys) and fresh.version == idx.version
        # its own card's templates never count as a duplicate
        assert dedup.find_duplicate(s, "C7202", [b[0]], "fmr_1e-4") is None


def test_byte_identical_and_undecodable_stored_templates(app, client, tokens, templates, db):
    a, _ = templates
    first_enrolled(client, tokens, ("C7301", "C7302", "C7303"), a[:3])
    with db.session() as s:
        hit = dedup.find_duplicate(s, "C7302", [a[1]], "fmr_1e-4")
        assert hit is not None and hit.card_number == "C7301" and hit.score is None  # same bytes
    # stored before uploads were checked: found by its bytes, never decoded, never a crash
    saved = app.state.template_validator, app.state.duplicate_checker
    app.state.template_validator, app.state.duplicate_checker = None, lambda *_a: None
    junk = [b"junk-template-%d" % i for i in range(3)]
    assert enroll(client, tokens, "C7302", junk)["status"] == "enrolled"
    app.state.template_validator, app.state.duplicate_checker = saved
    with db.session() as s:
        hit = dedup.find_duplicate(s, "C7303", [junk[2]], "fmr_1e-4")
        assert hit is not None and hit.card_number == "C7302"
        assert dedup.index_for(s).undecodable == 3
        with pytest.raises(dedup.Invalid, match="cannot be decoded"):
            dedup.find_duplicate(s, "C7303", [b"other junk"], "fmr_1e-4")


def test_a_failing_matcher_fails_the_check(app, client, tokens, templates, db, monkeypatch):
    """No silent fallback (issue 13): if the matcher raises, the enrollment fails rather than
    being stored unchecked."""
    a, _ = templates
    first_enrolled(client, tokens, ("C7401", "C7402"), a[:3])

    def broken(*_a, **_k):
        raise RuntimeError("matcher failure")

    monkeypatch.setattr(dedup.matcher, "compare", broken)
    with db.session() as s, pytest.raises(RuntimeError, match="matcher failure"):
        dedup.find_duplicate(s, "C7402", [a[3]], "fmr_1e-4")
