"""Dashboard pages (server-rendered Jinja2), one module per area. Reads use
server.dashboard.queries; the only writes, alert handling, go through server.crud.alerts, which
audit-logs them. `router` has them all; `render` draws any template (also the error page)."""

from fastapi import APIRouter

from fpverify.server.dashboard.routes import alerts, cards, failures, login, overview, report, suspicion
from fpverify.server.dashboard.routes.common import render

router = APIRouter(include_in_schema=False)
for _module in (login, overview, failures, cards, alerts, suspicion, report):
    router.include_router(_module.router)

__all__ = ["render", "router"]
