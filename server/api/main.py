"""The API router under settings.api_prefix (/api/v1)."""

from fastapi import APIRouter

from fpverify.server.api.routes import (
    approvals,
    audit,
    auth,
    devices,
    enrollments,
    health,
    holders,
    results,
    stays,
    users,
)

api_router = APIRouter()
for module in (auth, users, devices, holders, enrollments, results, stays, approvals, audit, health):
    api_router.include_router(module.router)
