"""The wire contract: committed JSON Schemas are current; malformed messages fail validation."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from fpverify.edge.outbox import new_result_id
from fpverify.edge.wire import (
    Consent,
    EnrolledFinger,
    EnrollmentUpload,
    TemplateAdd,
    TemplateFeed,
    Topics,
    VerificationResult,
    schema_files,
)
from tests.edge.helpers import now

DOCS = Path(__file__).resolve().parents[2] / "docs" / "wire"


def test_committed_schemas_are_current():
    expected = schema_files()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in DOCS.glob("*.json")}
    assert set(on_disk) == set(expected), "run: fpverify edge wire-schemas --out docs/wire"
    for name, text in expected.items():
        assert on_disk[name] == text, f"docs/wire/{name} is stale: run fpverify edge wire-schemas"


def result(**kw) -> dict:
    base = dict(result_id=str(new_result_id()), device_id="desk-01", site_id="site-a", card_number="C1234567",
                outcome="match", purpose="pharmacy", captured_at=now().isoformat())
    return base | kw


def test_result_roundtrip_and_rejections():
    r = VerificationResult.model_validate_json(json.dumps(result(score=0.415, threshold=0.1788)))
    assert VerificationResult.model_validate_json(r.model_dump_json()) == r
    bad = [
        result(extra_field=1),                       # unknown fields are refused, not ignored
        result(device_id="desk/01"),                 # would break the topic
        result(card_number="12"),
        result(captured_at="2025-01-01T00:00:00"),    # no time zone
        result(outcome="maybe"),
        result(score=float("nan")),
        result(score=1.5),                            # off the matcher's 0..1 scale
        result(outcome="delegate_match"),             # the delegate must be named
    ]
    for payload in bad:
        with pytest.raises(ValidationError):
            VerificationResult.model_validate_json(json.dumps(payload))


def test_template_add_base64_and_delegates():
    blob = b"\x00\x01template-bytes"
    add = TemplateAdd.model_validate({"version": 1, "template_id": "t", "card_number": "C1234567", "finger": 2,
                                      "quality": 70, "template": base64.b64encode(blob).decode()})
    assert add.template == blob
    assert json.loads(add.model_dump_json())["template"] == base64.b64encode(blob).decode()
    with pytest.raises(ValidationError, match="base64"):
        TemplateAdd.model_validate({"version": 1, "template_id": "t", "card_number": "C1234567", "finger": 2,
                                    "quality": 70, "template": "not base64!!"})
    with pytest.raises(ValidationError, match="delegate_id"):
        TemplateAdd(version=1, template_id="t", card_number="C1234567", finger=2, quality=70, template=blob,
                    role="delegate")
    with pytest.raises(ValidationError):  # an unknown op in a feed
        TemplateFeed.model_validate({"since": 0, "version": 1, "changes": [{"op": "drop", "version": 1}]})


def test_template_add_cohort_statistics_are_optional_and_checked():
    """Issue 17: an older registry sends none (the raw rule); a newer one both, sd > 0, finite."""
    base = {"version": 1, "template_id": "t", "card_number": "C1234567", "finger": 2, "quality": 70,
            "template": base64.b64encode(b"\x00\x01template-bytes").decode()}
    old = TemplateAdd.model_validate(base)
    assert (old.cohort_mean, old.cohort_sd) == (None, None)
    new = TemplateAdd.model_validate({**base, "cohort_mean": 0.061, "cohort_sd": 0.019})
    assert json.loads(new.model_dump_json())["cohort_sd"] == 0.019
    for bad in ({"cohort_mean": 0.06}, {"cohort_sd": 0.02}, {"cohort_mean": 0.06, "cohort_sd": 0.0},
                {"cohort_mean": 0.06, "cohort_sd": -0.01}, {"cohort_mean": float("nan"), "cohort_sd": 0.02},
                {"cohort_mean": 0.06, "cohort_sd": float("inf")}, {"cohort_mean": 3.0, "cohort_sd": 0.02}):
        with pytest.raises(ValidationError):
            TemplateAdd.model_validate({**base, **bad})


def test_enrollment_upload_checks():
    consent = Consent(given_at=now(), scope="fingerprint verification at site-a", witnessed_by="op1")
    finger = EnrolledFinger(finger=2, templates=[b"t" * 16] * 3, qualities=[70, 80, 90])
    EnrollmentUpload(enrollment_id=new_result_id(), device_id="desk-01", card_number="C1234567",
                     operator_id="op1", consent=consent, fingers=[finger])
    with pytest.raises(ValidationError):  # fewer than 3 impressions
        EnrolledFinger(finger=2, templates=[b"t" * 16] * 2, qualities=[70, 80])
    with pytest.raises(ValidationError, match="one quality per template"):
        EnrolledFinger(finger=2, templates=[b"t" * 16] * 3, qualities=[70, 80, 90, 91])
    with pytest.raises(ValidationError, match="once"):
        EnrollmentUpload(enrollment_id=new_result_id(), device_id="desk-01", card_number="C1234567",
                         operator_id="op1", consent=consent, fingers=[finger, finger])


def test_topics():
    t = Topics("desk-01")
    assert t.results == "fpverify/v1/devices/desk-01/results"
    assert Topics.device_of(t.status) == "desk-01"
    assert Topics.device_of("other/v1/devices/x/results") is None
    assert Topics.shared_results() == "$share/registry/fpverify/v1/devices/+/results"


def test_enrollment_asks_five_presses_and_takes_three_to_ten():
    """The default a station asks for (docs/matcher.md "Desk": 5 against 3 presses) and the range the
    registry takes; the HIS API and the CLI share the one definition."""
    from fpverify.edge.kiosk.his import openapi_document
    from fpverify.edge.wire import ENROLL_PRESSES, MAX_PRESSES, MIN_PRESSES

    assert (MIN_PRESSES, ENROLL_PRESSES, MAX_PRESSES) == (3, 5, 10)
    spec = json.loads(openapi_document())
    prop = next(s["properties"]["impressions"] for s in spec["components"]["schemas"].values()
                if "impressions" in s.get("properties", {}))
    assert (prop["default"], prop["minimum"], prop["maximum"]) == (5, 3, 10)
