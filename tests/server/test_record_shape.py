"""One shape for a verification record: the wire model defines it; the table, the ingest row, the
API schema and the dashboard's columns follow it (a field added to the wire appears everywhere)."""

from __future__ import annotations

from datetime import UTC, datetime

from fpverify.edge import wire
from fpverify.edge.outbox import new_result_id
from fpverify.server import schemas
from fpverify.server.dashboard.result_table import RESULT_COLUMNS
from fpverify.server.models import VerificationRecord
from fpverify.server.models.results import RECORD_FIELDS, record_row

WIRE_FIELDS = set(wire.VerificationResult.model_fields) - wire.ENVELOPE_FIELDS


def test_every_layer_has_the_wire_fields():
    assert set(RECORD_FIELDS) == WIRE_FIELDS
    assert {c.name for c in VerificationRecord.__table__.columns} == WIRE_FIELDS | {"received_at"}
    assert set(schemas.ResultOut.model_fields) == WIRE_FIELDS | {"received_at"}
    assert {c.field for c in RESULT_COLUMNS if c.field} <= WIRE_FIELDS
    table = VerificationRecord.__table__.columns
    assert table["card_number"].type.length == 32 and table["detail"].type.length == 500
    assert table["counter"].type.__class__.__name__ == "BigInteger" and table["score"].nullable
    assert table["result_id"].primary_key and not table["captured_at"].nullable


def test_a_result_goes_through_row_record_and_api_schema_unchanged():
    r = wire.VerificationResult(result_id=new_result_id(), device_id="desk-1", site_id="site-1",
                                card_number="C100200", outcome="delegate_match", purpose="pharmacy",
                                captured_at=datetime.now(UTC), score=0.4123, threshold=0.1788, finger=2,
                                delegate_id="D-1", quality=80, operator_id="op-1", counter=12,
                                signature="ecdsa-p256-sha256:AAAA")
    received = datetime.now(UTC)
    row = record_row(r, received)
    assert row["outcome"] == "delegate_match" and type(row["outcome"]) is str
    out = schemas.ResultOut.model_validate(VerificationRecord(**row))
    assert out.model_dump(exclude={"received_at"}) == r.model_dump(exclude=wire.ENVELOPE_FIELDS)
    assert out.received_at == received


def test_score_is_bounded_to_the_matchers_scale():
    schema = wire.VerificationResult.model_json_schema()["properties"]["score"]
    bounded = next(s for s in schema["anyOf"] if s.get("type") == "number")
    assert bounded["minimum"] == 0 and bounded["maximum"] == 1
