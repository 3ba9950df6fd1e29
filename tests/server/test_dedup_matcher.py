"""Duplicate check with the real matcher: another impression of an enrolled finger on a different
card is held for two supervisors; a different finger is enrolled; undecodable templates are 422."""

from __future__ import annotations

import pytest

from tests.server.conftest import auth, upload_body

matcher = pytest.importorskip("fpverify.matcher")
synth = pytest.importorskip("fpverify.matcher.synth")
P = "/api/v1"


@pytest.fixture(scope="module")
def templates():
    if not hasattr(matcher, "extract"):
        pytest.skip("matcher.extract not available yet")
    f1, f2 = synth.generate_finger(11), synth.generate_finger(12)
    a = [matcher.extract(synth.impression(f1, k, seed=0)[0]).to_bytes() for k in range(4)]
    b = [matcher.extract(synth.impression(f2, k, seed=0)[0]).to_bytes() for k in range(3)]
    return a, b


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
