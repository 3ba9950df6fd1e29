"""Example HIS client for the station's HIS API (docs/station.md, "The hospital system in the loop").

Standard library only, so it runs wherever the HIS integration runs. Usage:

    python his_client.py --station http://127.0.0.1:8471 --token-file his.token \
        --card CARD0042 --operator clerk-07 --purpose registration

It starts a check, long-polls its outcome and prints it; Ctrl-C cancels the check at the station.
The outcome's `result_id` is the registry's id of the recorded result (for the billing system).
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request

FINAL = {"done", "cancelled", "card_not_read", "failed"}


class StationError(RuntimeError):
    def __init__(self, status: int, body: dict) -> None:
        super().__init__(f"HTTP {status}: {body.get('detail', body)}")
        self.status, self.body = status, body


class HisClient:
    def __init__(self, station: str, token: str, timeout: float = 90.0) -> None:
        self.base = station.rstrip("/") + "/his/v1"
        self.token = token
        self.timeout = timeout

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return json.load(r)
        except urllib.error.HTTPError as exc:
            try:
                detail = json.load(exc)
            except ValueError:
                detail = {"detail": exc.reason}
            raise StationError(exc.code, detail) from None

    def start(self, card: str, operator_id: str, purpose: str) -> dict:
        """201: the check is queued. 409: the desk is busy (body['current']). 422: card not read."""
        return self._call(
            "POST", "/verifications", {"card": card, "operator_id": operator_id, "purpose": purpose}
        )

    def wait(self, verification_id: str, wait_s: float = 30.0) -> dict:
        """Long poll until the check is final (repeats while the patient is still at the sensor)."""
        while True:
            state = self._call("GET", f"/verifications/{verification_id}?wait_s={wait_s:g}")
            if state["state"] in FINAL:
                return state

    def cancel(self, verification_id: str) -> dict:
        return self._call("DELETE", f"/verifications/{verification_id}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--station", default="http://127.0.0.1:8471")
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--card", required=True)
    ap.add_argument("--operator", required=True)
    ap.add_argument(
        "--purpose",
        default="registration",
        choices=["registration", "admission", "billing", "pharmacy", "bedside"],
    )
    args = ap.parse_args(argv)
    with open(args.token_file, encoding="utf-8") as f:
        client = HisClient(args.station, f.read().strip())
    try:
        job = client.start(args.card, args.operator, args.purpose)
    except StationError as exc:
        print(f"not started: {exc}", file=sys.stderr)
        return 2
    try:
        state = client.wait(job["id"])
    except KeyboardInterrupt:
        state = client.cancel(job["id"])
    print(
        json.dumps(
            {k: state.get(k) for k in ("state", "outcome", "message", "message_zh", "result_id")},
            ensure_ascii=False,
        )
    )
    return 0 if state.get("outcome") in ("match", "delegate_match") else 1


if __name__ == "__main__":
    sys.exit(main())
