"""Dashboard settings (environment variables with the prefix FPVERIFY_DASHBOARD_).

The registry stores UTC; the insurance office thinks in local days and a 17:00 report deadline,
so days, the report period and every time shown use `timezone`.
"""

from __future__ import annotations

from datetime import time, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class DashboardSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FPVERIFY_DASHBOARD_", env_file=None, extra="ignore")

    timezone: str = "Asia/Shanghai"
    report_cutoff: time = time(17, 0)  # the daily report covers the 24 h ending at this local time
    trend_days: int = Field(default=14, ge=2, le=92)
    # Suspicion points (疑点)
    travel_minutes: float = Field(default=60.0, gt=0)  # the same card at two sites closer than this
    repeat_no_match: int = Field(default=2, ge=2)  # no_match outcomes on one card within `lookback_days`
    poor_quality_min: int = Field(default=3, ge=1)  # poor presses at one device within 24 h ...
    poor_quality_rate: float = Field(default=0.2, gt=0, le=1)  # ... and at least this share of its checks
    lookback_days: int = Field(default=7, ge=1, le=92)
    page_size: int = Field(default=100, ge=10, le=1000)
    refresh_s: int = Field(default=5, ge=0)  # live tables re-fetch this often (0: never)

    @property
    def tz(self) -> tzinfo:
        return ZoneInfo(self.timezone)


@lru_cache
def get_dashboard_settings() -> DashboardSettings:
    return DashboardSettings()
