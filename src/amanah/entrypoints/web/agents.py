"""The bank agents' API: reply in a Messenger/WhatsApp thread as a person, give a thread back to the bot.

Both need ``Authorization: Bearer <AMANAH_ADMIN_TOKEN>`` (404 when no token is configured: the
endpoints do not exist; 401 for a missing or wrong token), checked before the body is read.

* ``POST /admin/agent/messages`` ``{"channel", "user_id", "text", "agent", "request_id"?}`` -> 202
  with the receipt (``status`` ``queued``, or ``held`` when the messaging window does not allow it:
  it waits for the customer's next message); 422 when the egress guard would redact part of the text
  (``error: message_blocked``, the categories found, nothing queued) or the body is invalid; 404 when
  the user never wrote on that channel. ``request_id`` makes a retried request queue it only once.
* ``POST /admin/agent/release`` ``{"channel", "user_id", "agent"}`` -> 200: the bot answers in that
  thread again (on Messenger after ``take_thread_control`` if another app holds it); open tickets are
  resolved.
* ``GET /admin/agent/tickets`` (``?resolved=true`` for resolved ones too, ``?limit=``): handover tickets.

The agent id is recorded with the message (``channel_outbox.agent``); it is never sent to the platform.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError
from starlette.concurrency import run_in_threadpool

from amanah.adapters.channels.handover import AgentDesk, MessageBlocked, NoConversation, make_desk
from amanah.domain.errors import ValidationError

if TYPE_CHECKING:
    from fastapi.templating import Jinja2Templates

    from amanah.bootstrap import Container

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024


class AgentMessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: str = Field(min_length=1, max_length=16)
    user_id: str = Field(min_length=1, max_length=200)
    text: str = Field(min_length=1, max_length=4096)
    agent: str = Field(min_length=1, max_length=100)
    request_id: str | None = Field(default=None, min_length=1, max_length=64)


class AgentReleaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: str = Field(min_length=1, max_length=16)
    user_id: str = Field(min_length=1, max_length=200)
    agent: str = Field(min_length=1, max_length=100)


def _error(status: int, error: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": error, **extra}, status_code=status)


def check_admin(request: Request, admin_token: str) -> JSONResponse | None:
    """None when the request carries the admin token; else the 404 / 401 answer to give."""
    if not admin_token:
        return _error(404, "not_found")
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {admin_token}".encode()):
        return _error(401, "unauthorized")
    return None


async def _json_body(request: Request, model: type[BaseModel]) -> BaseModel | JSONResponse:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        return _error(413, "too_large")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return _error(400, "invalid_json", detail="the body must be a JSON object")
    if not isinstance(doc, dict):
        return _error(400, "invalid_json", detail="the body must be a JSON object")
    try:
        return model.model_validate(doc)
    except PydanticValidationError as exc:
        # Field names and problems only: the submitted values are not echoed back.
        problems = [
            {"field": ".".join(str(p) for p in e.get("loc", ())) or "body", "problem": e.get("msg", "")}
            for e in exc.errors()
        ]
        return _error(422, "invalid_request", detail=problems)


def router(container: Container, templates: Jinja2Templates) -> APIRouter:
    """``/admin/agent/messages``, ``/admin/agent/release`` and ``/admin/agent/tickets``."""
    r = APIRouter()
    if getattr(container, "channels", None) is None:
        return r
    admin_token = container.settings.admin_token.get_secret_value()
    desk: list[AgentDesk] = []

    def get_desk() -> AgentDesk:
        if not desk:
            desk.append(make_desk(container))
        return desk[0]

    @r.post("/admin/agent/messages", include_in_schema=False)
    async def agent_message(request: Request) -> Response:
        denied = check_admin(request, admin_token)
        if denied is not None:
            return denied
        body = await _json_body(request, AgentMessageIn)
        if isinstance(body, JSONResponse):
            return body
        assert isinstance(body, AgentMessageIn)
        try:
            receipt = await run_in_threadpool(
                get_desk().send,
                body.channel,
                body.user_id,
                body.text,
                body.agent,
                request_id=body.request_id,
            )
        except MessageBlocked as exc:
            return _error(422, "message_blocked", detail=str(exc), categories=list(exc.categories))
        except NoConversation as exc:
            return _error(404, "no_conversation", detail=str(exc))
        except ValidationError as exc:
            return _error(422, "invalid_request", detail=str(exc))
        status = 200 if receipt.status == "duplicate" else 202
        return JSONResponse(receipt.to_dict(), status_code=status)

    @r.post("/admin/agent/release", include_in_schema=False)
    async def agent_release(request: Request) -> Response:
        denied = check_admin(request, admin_token)
        if denied is not None:
            return denied
        body = await _json_body(request, AgentReleaseIn)
        if isinstance(body, JSONResponse):
            return body
        assert isinstance(body, AgentReleaseIn)
        try:
            released = await run_in_threadpool(get_desk().release, body.channel, body.user_id, body.agent)
        except NoConversation as exc:
            return _error(404, "no_conversation", detail=str(exc))
        except ValidationError as exc:
            return _error(422, "invalid_request", detail=str(exc))
        return JSONResponse(released.to_dict())

    @r.get("/admin/agent/tickets", include_in_schema=False)
    def agent_tickets(request: Request) -> Response:
        denied = check_admin(request, admin_token)
        if denied is not None:
            return denied
        resolved = request.query_params.get("resolved", "").lower() in ("1", "true", "yes")
        limit = request.query_params.get("limit", "100")
        if not (limit.isascii() and limit.isdigit()):
            return _error(422, "invalid_request", detail="limit must be a number")
        tickets = get_desk().tickets(open_only=not resolved, limit=max(1, min(int(limit), 1000)))
        return Response(json.dumps({"tickets": tickets}, default=str), media_type="application/json")

    return r
