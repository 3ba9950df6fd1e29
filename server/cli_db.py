"""How the command line reports a database it cannot use: one line and exit 2, never a traceback.

Every `fpverify server ...` command that opens the database is wrapped in `database_command`: an
unreachable or refusing server, a database never migrated, an unparsable URL, or a migration that
cannot run become `error: database <url without its password>: <first line of the reason>`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import typer


def shown_url(url: str | None) -> str:
    """The URL as it may be printed: without its password (or a placeholder when unparsable)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if not url:
        return "(no URL)"
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparsable URL)"


def database_command(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a command taking `database_url`: database failures become a clear error (exit 2)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from alembic.util import CommandError
        from sqlalchemy.exc import SQLAlchemyError

        try:
            return fn(*args, **kwargs)
        except (SQLAlchemyError, CommandError) as exc:
            url = kwargs.get("database_url")
            if not url:
                from fpverify.server.core.config import ConfigError, get_settings

                try:
                    url = get_settings().database_url
                except ConfigError:
                    url = None
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            typer.echo(f"error: database {shown_url(url)}: {reason[0] if reason else type(exc).__name__}", err=True)
            raise typer.Exit(2) from None

    return wrapper
