"""The API's access policy as the tests state it: (method, path) -> who may call it. Checked against
the app's route table by test_matrix (a new endpoint without an entry fails) and used by test_fuzz_api."""

from __future__ import annotations

PREFIX = "/api/v1"
ANON, SYS, ENR, AUD, SUP, DEV = "anonymous", "sysadmin", "enroller", "auditor", "supervisor", "device"
HIS = "his"  # a hospital system's service account: one result by id, nothing else
CALLERS = (ANON, SYS, ENR, AUD, SUP, HIS, DEV)
PERSONAL = {ENR, SUP, AUD}
OFFICE = {SUP, AUD}
STAFF = {SYS, ENR, AUD, SUP}

# (method, path) -> who may call it. Sysadmins never reach personal or biometric data.
POLICY: dict[tuple[str, str], set[str]] = {
    ("POST", "/auth/login"): set(CALLERS),
    ("POST", "/auth/password"): set(CALLERS),
    ("POST", "/auth/logout"): STAFF | {HIS},
    ("GET", "/auth/me"): STAFF | {HIS},
    ("GET", "/health"): set(CALLERS),
    ("GET", "/openapi.json"): set(CALLERS),
    ("GET", "/users"): {SYS, AUD},
    ("POST", "/users"): {SYS},
    ("POST", "/users/{user_id}/freeze"): {SYS},
    ("POST", "/users/{user_id}/unfreeze"): {SYS},
    ("POST", "/users/{user_id}/password"): {SYS},
    ("POST", "/users/{user_id}/role"): {SYS},
    ("GET", "/sites"): STAFF,
    ("POST", "/sites"): {SYS},
    ("GET", "/devices"): STAFF,
    ("POST", "/devices"): {SYS},
    ("POST", "/devices/{device_id}/token"): {SYS},
    ("POST", "/devices/{device_id}/disable"): {SYS},
    ("POST", "/devices/{device_id}/enable"): {SYS},
    ("POST", "/devices/{device_id}/retire"): {SYS},
    ("GET", "/devices/{device_id}/templates"): {DEV},
    ("GET", "/devices/{device_id}/cards/{card_number}"): {DEV},
    ("GET", "/devices/{device_id}/staff"): {DEV},
    ("GET", "/staff"): {SYS, AUD},
    ("POST", "/staff/{user_id}/credentials"): {SYS},
    ("POST", "/staff/{user_id}/revoke"): {SYS},
    ("GET", "/cardholders"): PERSONAL,
    ("POST", "/cardholders"): {ENR},
    ("GET", "/cardholders/{card_number}"): PERSONAL,
    ("POST", "/cardholders/{card_number}/block"): {SUP},
    ("GET", "/cardholders/{card_number}/consents"): PERSONAL,
    ("POST", "/cardholders/{card_number}/consents"): {ENR},
    ("POST", "/cardholders/{card_number}/consents/withdraw"): {ENR, SUP},
    ("GET", "/cardholders/{card_number}/delegates"): PERSONAL,
    ("POST", "/cardholders/{card_number}/delegates"): {ENR},
    ("GET", "/cardholders/{card_number}/templates"): PERSONAL,
    ("POST", "/enrollments"): {ENR},
    ("GET", "/enrollments/{enrollment_id}"): PERSONAL,
    ("GET", "/results"): OFFICE,
    ("GET", "/results/{result_id}"): OFFICE,
    ("GET", "/his/results/{result_id}"): {HIS},
    ("GET", "/deadletters"): OFFICE,
    ("GET", "/alerts"): OFFICE,
    ("GET", "/alerts/{alert_id}"): OFFICE,
    ("POST", "/alerts/{alert_id}/notes"): {SUP},
    ("POST", "/alerts/{alert_id}/acknowledge"): {SUP},
    ("POST", "/alerts/{alert_id}/resolve"): {SUP},
    ("GET", "/stays"): PERSONAL,
    ("POST", "/stays"): {ENR},
    ("GET", "/stays/overdue"): PERSONAL,
    ("POST", "/stays/{stay_id}/discharge"): {ENR},
    ("GET", "/approvals"): OFFICE | {SYS},  # sysadmins: the account operations only
    ("POST", "/approvals"): {SUP},
    ("POST", "/approvals/{approval_id}/approve"): {SUP},
    ("POST", "/approvals/{approval_id}/reject"): {SUP},
    ("GET", "/audit"): {AUD},
    ("GET", "/audit/verify"): {AUD, SYS},
}

PARAMS = {"user_id": "2", "device_id": "dev-1", "card_number": "C0001", "enrollment_id": "e-1",
          "result_id": "00000000-0000-0000-0000-000000000001", "alert_id": "1", "stay_id": "1", "approval_id": "1"}
