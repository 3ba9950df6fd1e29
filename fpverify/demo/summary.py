"""What the demo tells at its start (the logins) and at its end (the summary: what reached the
registry, what each station recorded, what was lost)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from fpverify.demo.cast import PASSWORDS

if TYPE_CHECKING:
    from fpverify.demo.services import DemoRegistry
    from fpverify.demo.system import Demo

Say = Callable[[str], None]


def registry_count(registry: DemoRegistry) -> int:
    from fpverify.server.dashboard import queries

    with registry.db.session() as s:
        return queries.total_results(s)


def summary(demo: Demo) -> dict:
    from sqlalchemy import func, select

    from fpverify.server.models import Alert, VerificationRecord

    with demo.registry.db.session() as s:
        by_outcome = dict(s.execute(select(VerificationRecord.outcome, func.count())
                                    .group_by(VerificationRecord.outcome)).all())
        by_device = dict(s.execute(select(VerificationRecord.device_id, func.count())
                                   .group_by(VerificationRecord.device_id)).all())
        alerts = int(s.scalar(select(func.count()).select_from(Alert)) or 0)
        retained = int(s.scalar(select(func.count()).select_from(Alert).where(Alert.card_retained.is_(True))) or 0)
    stations = {}
    for st in demo.stations.values():
        recorded, pending = st.outbox_counts()
        stations[st.device_id] = {"title": st.title, "recorded": recorded, "pending": pending,
                                  "network_cuts": st.relay.cuts, "kiosk": st.kiosk_url}
    recorded = sum(v["recorded"] for v in stations.values())
    first = demo.first_verification_s
    return {
        "verifications": sum(by_outcome.values()), "by_outcome": by_outcome, "by_device": by_device,
        "alerts_raised": alerts, "cards_retained": retained, "recorded_at_stations": recorded,
        "lost": max(0, recorded - sum(by_outcome.values())), "stations": stations,
        "enrolled": len(demo.enrolled), "enroll_failed": demo.enroll_failed,
        "held_for_review": demo.held_for_review,
        "first_verification_s": None if first is None else round(first, 1),
        "mqtt_version": demo.mqtt_version, "notes": demo.notes,
    }


def print_logins(say: Say, url: str) -> None:
    say("")
    say(f"Dashboard: {url}/dashboard/   (API docs: {url}/docs)")
    say(f"  supervisor  / {PASSWORDS['supervisor']}   reads everything, acknowledges and resolves alerts")
    say(f"  auditor     / {PASSWORDS['auditor']}      reads everything (query only)")
    say(f"  admin       / {PASSWORDS['admin']}      sysadmin: stations and totals, no personal data")
    say(f"  enroller    / {PASSWORDS['enroller']}     stations' enrollment (API only, no dashboard)")
    say("")


def print_kiosks(say: Say, demo: Demo) -> None:
    """Each desk's screen: the page its patients see, live while the demo runs."""
    say("Desk screens (kiosk pages, 中文; add ?lang=en for English):")
    for st in demo.stations.values():
        say(f"  {st.title:<28} {st.kiosk_url or 'no kiosk page'}")
    say("")


def print_summary(say: Say, s: dict, drained: bool) -> None:
    say("")
    say("==== summary ====")
    say(f"verifications in the registry: {s['verifications']} (recorded at stations: {s['recorded_at_stations']}, "
        f"lost: {s['lost']}{'' if drained else ', NOT fully drained'})")
    for outcome, n in sorted(s["by_outcome"].items(), key=lambda kv: -kv[1]):
        say(f"  {outcome:<15} {n}")
    say(f"alerts raised: {s['alerts_raised']} (cards retained: {s['cards_retained']})")
    for dev, st in s["stations"].items():
        say(f"  station {dev:<14} recorded {st['recorded']:>4}, pending {st['pending']}, network cuts {st['network_cuts']}")
        if st.get("kiosk"):
            say(f"    kiosk page (desk screen): {st['kiosk']}  (English: {st['kiosk']}?lang=en)")
    say(f"card holders enrolled: {s['enrolled']}" + (f"; failed: {', '.join(s['enroll_failed'])}"
                                                     if s["enroll_failed"] else "")
        + (f"; held for duplicate review: {', '.join(s['held_for_review'])}" if s["held_for_review"] else ""))
    if s["first_verification_s"] is not None:
        say(f"first verification {s['first_verification_s']} s after start")
    for note in s["notes"]:
        say(f"note: {note}")


def healthy(s: dict, drained: bool) -> bool:
    """The exit status of a headless run: everything drained, nothing lost, something verified."""
    return drained and s["lost"] == 0 and s["verifications"] > 0
