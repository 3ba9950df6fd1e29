"""Login (JSON or form), choosing one's own password, logout, who am I. The rules are
server/core/auth.py's; this module only speaks HTTP (401, 403, 429 with Retry-After)."""

from __future__ import annotations

import json

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ValidationError

from fpverify.server import schemas
from fpverify.server.api.deps import AnyUser, Creds, SessionDep
from fpverify.server.core import auth

router = APIRouter(prefix="/auth", tags=["auth"])

_REFUSALS = {401: {"description": "invalid user name or password (one message for every failure)"},
             403: {"description": "correct password, but the account is frozen or must choose a password"},
             429: {"description": "too many attempts from this client (Retry-After says when to retry)"}}


def _body(model: type[BaseModel]) -> dict:
    schema = model.model_json_schema()
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": schema}, "application/x-www-form-urlencoded": {"schema": schema}}}}


async def _read(request: Request, model: type[BaseModel]):
    ctype = request.headers.get("content-type", "")
    try:
        if ctype.startswith("application/x-www-form-urlencoded") or ctype.startswith("multipart/form-data"):
            form = await request.form()
            data = {k: v for k, v in form.items() if k in model.model_fields}
        else:
            data = json.loads(await request.body() or b"null")
        return model.model_validate(data)
    except (ValueError, ValidationError) as exc:
        detail = exc.errors(include_url=False, include_context=False) if isinstance(exc, ValidationError) else str(exc)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail) from None


async def _login(request: Request, username: str, password: str, new_password: str | None) -> schemas.TokenOut:
    app = request.app
    client = auth.client_of(request)

    def work() -> schemas.TokenOut:
        with app.state.db.sessionmaker() as s:
            try:
                user, token = auth.login(s, app.state.settings, client, username, password, new_password)
            except auth.LoginError as exc:
                headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else {}
                if exc.retry_after:
                    headers["Retry-After"] = str(exc.retry_after)
                raise HTTPException(exc.status_code, exc.message, headers=headers) from None
            ttl = app.state.settings.token_ttl_minutes
            return schemas.TokenOut(access_token=token, role=user.role, expires_in=ttl * 60)

    return await run_in_threadpool(work)


@router.post("/login", response_model=schemas.TokenOut, openapi_extra=_body(schemas.LoginIn), responses=_REFUSALS)
async def login(request: Request) -> schemas.TokenOut:
    """Exchange username and password (JSON or form) for a bearer token."""
    creds = await _read(request, schemas.LoginIn)
    return await _login(request, creds.username, creds.password, None)


@router.post("/password", response_model=schemas.TokenOut, openapi_extra=_body(schemas.PasswordChangeIn),
             responses=_REFUSALS)
async def change_password(request: Request) -> schemas.TokenOut:
    """Replace your own password (after a one-time password, or any time): the current one, then
    the new one. Throttled like login; every other session of the account ends."""
    body = await _read(request, schemas.PasswordChangeIn)
    return await _login(request, body.username, body.password, body.new_password)


@router.post("/logout", status_code=204)
def logout(user: AnyUser, s: SessionDep, creds: Creds) -> None:
    """Revoke the token used for this request."""
    auth.revoke_token(s, creds.credentials)
    s.commit()


@router.get("/me", response_model=schemas.UserOut)
def me(user: AnyUser) -> schemas.UserOut:
    return user
