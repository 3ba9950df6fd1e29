"""Login (JSON or form), logout, who am I."""

from __future__ import annotations

import json

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from fpverify.server import schemas
from fpverify.server.api.deps import AnyUser, Creds, SessionDep
from fpverify.server.crud import users as users_crud

router = APIRouter(prefix="/auth", tags=["auth"])

_LOGIN_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": schemas.LoginIn.model_json_schema()},
            "application/x-www-form-urlencoded": {"schema": schemas.LoginIn.model_json_schema()},
        },
    }
}


@router.post("/login", response_model=schemas.TokenOut, openapi_extra=_LOGIN_BODY,
             responses={401: {"description": "bad credentials, locked or frozen"}})
async def login(request: Request) -> schemas.TokenOut:
    """Exchange username and password (JSON or form) for a bearer token."""
    ctype = request.headers.get("content-type", "")
    try:
        if ctype.startswith("application/x-www-form-urlencoded") or ctype.startswith("multipart/form-data"):
            form = await request.form()
            data = {k: v for k, v in form.items() if k in ("username", "password")}
        else:
            data = json.loads(await request.body() or b"null")
        creds = schemas.LoginIn.model_validate(data)
    except (ValueError, ValidationError) as exc:
        detail = exc.errors(include_url=False, include_context=False) if isinstance(exc, ValidationError) else str(exc)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail) from None

    app = request.app

    def work() -> schemas.TokenOut:
        with app.state.db.sessionmaker() as s:
            try:
                user = users_crud.authenticate(s, app.state.settings, creds.username, creds.password)
            except users_crud.LoginFailed as exc:
                raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc),
                                    headers={"WWW-Authenticate": "Bearer"}) from None
            ttl = app.state.settings.token_ttl_minutes
            token = users_crud.issue_token(s, user, ttl)
            s.commit()
            return schemas.TokenOut(access_token=token, role=user.role, expires_in=ttl * 60)

    return await run_in_threadpool(work)


@router.post("/logout", status_code=204)
def logout(user: AnyUser, s: SessionDep, creds: Creds) -> None:
    """Revoke the token used for this request."""
    users_crud.revoke_token(s, creds.credentials)
    s.commit()


@router.get("/me", response_model=schemas.UserOut)
def me(user: AnyUser) -> schemas.UserOut:
    return user
