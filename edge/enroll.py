"""Enrollment mode: an operator enrolls a card holder (or an authorised delegate) at the station.

operator login at the registry -> the holder's separate consent, recorded with the operator as
witness -> per finger >= 3 impressions, each through the quality gate, lifted and placed again
-> the impressions must match each other (same finger, not three different ones) -> upload the
templates (never images) as edge.wire.EnrollmentUpload to POST /api/v1/enrollments.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import httpx
from pydantic import ValidationError

from fpverify.edge.config import EdgeConfig
from fpverify.edge.outbox import new_result_id
from fpverify.edge.prompts import Display, Prompt, Step
from fpverify.edge.sensor.driver import SensorError
from fpverify.edge.wire import (
    ENROLL_PRESSES,
    MIN_PRESSES,
    Consent,
    EnrolledFinger,
    EnrollmentUpload,
    HolderRole,
)
from fpverify.edge.workflow import Engine, Sensor, normalise_card

log = logging.getLogger("fpverify.edge.enroll")

CONSENT_SCOPE = "fingerprint templates for identity checks of the insurance card holder at this hospital"


class EnrollError(Exception):
    """Enrollment could not be completed; nothing was uploaded unless the message says so."""


class Enroller:
    def __init__(self, cfg: EdgeConfig, engine: Engine | None, sensor: Sensor | None,
                 display: Display | None = None, min_quality: int | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        if not cfg.registry.url:
            raise EnrollError("registry.url is not configured: enrollment needs the registry")
        if engine is None or sensor is None:
            raise EnrollError("enrollment needs the matcher and the sensor")
        self.cfg = cfg
        self.engine = engine
        self.sensor = sensor
        self.display = display
        # Enrollment sets the reference for years of checks: be stricter than at the desk.
        self.min_quality = min_quality if min_quality is not None else max(cfg.station.min_quality, 50)
        self.client = httpx.Client(base_url=cfg.registry.url, timeout=cfg.registry.timeout_s, transport=transport,
                                   verify=str(cfg.registry.ca_file) if cfg.registry.ca_file else True)
        self.operator: str | None = None
        self._token: str | None = None

    def _show(self, prompt: Prompt) -> None:
        if self.display:
            self.display.show(prompt)

    def login(self, username: str, password: str) -> str:
        try:
            resp = self.client.post("/api/v1/auth/login", json={"username": username, "password": password})
        except httpx.HTTPError as exc:
            raise EnrollError(f"registry unreachable at {self.cfg.registry.url}: {exc}") from exc
        if resp.status_code in (400, 401, 403):
            raise EnrollError(f"login refused for {username!r} ({resp.status_code})")
        if resp.status_code != 200:
            raise EnrollError(f"login failed: registry answered {resp.status_code}")
        try:
            body = resp.json()
            self._token = body["access_token"]
        except (ValueError, KeyError, TypeError) as exc:
            raise EnrollError("login answer has no access_token") from exc
        self.operator = username
        return str(body.get("role", ""))

    def capture_finger(self, finger: int, impressions: int = ENROLL_PRESSES) -> EnrolledFinger:
        """`impressions` good-quality templates of one finger that agree with each other."""
        templates, qualities, parsed = [], [], []
        for i in range(1, impressions + 1):
            for attempt in range(1, self.cfg.station.max_attempts + 1):
                self._show(Prompt(Step.PLACE_FINGER, finger=finger, impression=i, of=impressions, attempt=attempt))
                try:
                    image = self.sensor.capture(self.cfg.station.capture_wait_s)
                except SensorError as exc:
                    raise EnrollError(f"sensor problem during enrollment: {exc}") from exc
                report = self.engine.quality(image)
                if report.score >= self.min_quality:
                    break
                self._show(Prompt(Step.POOR_PRESS, finger=finger, impression=i, of=impressions, attempt=attempt,
                                  reasons=tuple(report.reasons), detail=f"quality {report.score}"))
            else:
                raise EnrollError(f"finger {finger}: no impression reached quality {self.min_quality} "
                                  f"in {self.cfg.station.max_attempts} tries; try another finger")
            try:
                template = self.engine.extract(image)
            except ValueError as exc:
                raise EnrollError(f"finger {finger}: the matcher could not use impression {i}: {exc}") from exc
            parsed.append(template)
            templates.append(template.to_bytes())
            qualities.append(int(report.score))
            self._show(Prompt(Step.LIFT_FINGER, finger=finger, impression=i, of=impressions))
        self._check_agreement(finger, parsed)
        return EnrolledFinger(finger=finger, templates=templates, qualities=qualities)

    def _check_agreement(self, finger: int, parsed: list) -> None:
        """Each impression must match at least one other at the operating point."""
        threshold = self.engine.threshold
        for i, a in enumerate(parsed):
            best = max(self.engine.compare(a, b) for j, b in enumerate(parsed) if j != i)
            if best < threshold:
                raise EnrollError(f"finger {finger}: impression {i + 1} does not match the others "
                                  f"(best {best:.3f} < {threshold:.3f}); was the same finger placed each time?")

    def enroll(self, card: str, fingers: list[int], impressions: int = ENROLL_PRESSES, delegate_id: str | None = None,
               consent_at: datetime | None = None) -> dict:
        """Capture and upload. Call only after the holder gave separate consent (the CLI asks)."""
        if self._token is None or self.operator is None:
            raise EnrollError("log in first")
        if impressions < MIN_PRESSES:
            raise EnrollError(f"at least {MIN_PRESSES} impressions per finger")
        card = normalise_card(card)
        consent = Consent(given_at=consent_at or datetime.now(UTC), scope=CONSENT_SCOPE, witnessed_by=self.operator)
        captured = [self.capture_finger(f, impressions) for f in fingers]
        try:
            upload = EnrollmentUpload(
                enrollment_id=new_result_id(), device_id=self.cfg.station.device_id, card_number=card,
                role=HolderRole.DELEGATE if delegate_id else HolderRole.HOLDER, delegate_id=delegate_id,
                operator_id=self.operator, consent=consent, fingers=captured)
        except ValidationError as exc:
            raise EnrollError(f"enrollment is malformed: {exc.errors()[0]['msg']}") from exc
        try:
            resp = self.client.post("/api/v1/enrollments", content=upload.model_dump_json(),
                                    headers={"Authorization": f"Bearer {self._token}",
                                             "Content-Type": "application/json"})
        except httpx.HTTPError as exc:
            raise EnrollError(f"upload failed, registry unreachable ({exc}); nothing stored, enroll again") from exc
        if resp.status_code == 201:
            return resp.json()
        detail = resp.text[:300]
        if resp.status_code == 409:
            raise EnrollError(f"registry refused: card holder not registered there, or no consent on file ({detail})")
        if resp.status_code in (401, 403):
            raise EnrollError(f"registry refused the operator ({resp.status_code}): not an enroller?")
        raise EnrollError(f"registry answered {resp.status_code}: {detail}")

    def enroll_staff(self, user_id: int, site_id: str, fingers: list[int], impressions: int = ENROLL_PRESSES,
                     pin: str | None = None, reason: str = "enrolled in person at the station") -> dict:
        """A clerk's sign-in, captured with the clerk present and filed by the logged-in sysadmin as a
        special operation (POST /api/v1/staff/{user_id}/credentials): it counts once a supervisor
        approves it. The PIN goes to the registry once, over the registry connection, and is hashed there."""
        if self._token is None or self.operator is None:
            raise EnrollError("log in first")
        if impressions < MIN_PRESSES:
            raise EnrollError(f"at least {MIN_PRESSES} impressions per finger")
        captured = [self.capture_finger(f, impressions) for f in fingers]
        body = {"site_id": site_id, "reason": reason, "pin": pin,
                "fingers": [json.loads(f.model_dump_json()) for f in captured]}
        try:
            resp = self.client.post(f"/api/v1/staff/{user_id}/credentials", json=body,
                                    headers={"Authorization": f"Bearer {self._token}"})
        except httpx.HTTPError as exc:
            raise EnrollError(f"upload failed, registry unreachable ({exc}); nothing stored, enroll again") from exc
        if resp.status_code == 202:
            return resp.json()
        if resp.status_code in (401, 403):
            raise EnrollError(f"registry refused {self.operator!r} ({resp.status_code}): only a sysadmin files a "
                              f"clerk's sign-in")
        raise EnrollError(f"registry answered {resp.status_code}: {resp.text[:300]}")

    def close(self) -> None:
        self.client.close()
