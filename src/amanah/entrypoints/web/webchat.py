"""The bank's own web chat: a first-party channel behind the bank's login."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlparse

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from amanah.app.commands import InboundMessage
from amanah.app.i18n import text_direction
from amanah.app.render import RenderedReply
from amanah.bootstrap import Container
from amanah.domain.conversation import Channel
from amanah.domain.errors import UnknownCustomer, ValidationError

SESSION_KEY = "customer_id"


class ChatIn(BaseModel):
    text: str = Field(default="", max_length=100_000)
    payload: str | None = Field(default=None, max_length=200)


def reply_json(rendered: RenderedReply) -> dict[str, Any]:
    return {
        "text": rendered.text,
        "lang": rendered.language,
        "dir": text_direction(rendered.language),
        "quick_replies": [{"title": q.title, "payload": q.payload} for q in rendered.quick_replies],
        "buttons": [{"title": b.title, "url": b.url} for b in rendered.buttons],
    }


def safe_next(target: str | None) -> str:
    """Only same-site relative paths: never an open redirect."""
    if not target:
        return "/"
    parsed = urlparse(target)
    if parsed.scheme or parsed.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def router(container: Container, templates: Jinja2Templates) -> APIRouter:
    r = APIRouter()
    settings = container.settings

    def current_customer(request: Request) -> int | None:
        value = request.session.get(SESSION_KEY)
        return value if isinstance(value, int) else None

    @r.get("/", response_class=HTMLResponse, include_in_schema=False)
    def chat_page(request: Request) -> Response:
        cid = current_customer(request)
        if cid is None:
            return RedirectResponse("/login", status_code=303)
        try:
            customer = container.core.customer(cid)
        except UnknownCustomer:
            request.session.clear()
            return RedirectResponse("/login", status_code=303)
        lang = customer.language
        return templates.TemplateResponse(
            request,
            "chat.html",
            {
                "customer": customer,
                "lang": lang,
                "dir": text_direction(lang),
                "max_chars": settings.max_message_chars,
            },
        )

    @r.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_page(request: Request, next: str | None = None, lang: str = "en") -> Response:
        return _login(request, next, lang, error=False, status=200)

    def _login(request: Request, next_url: str | None, lang: str, error: bool, status: int) -> Response:
        lang = "ar" if lang == "ar" else "en"
        return templates.TemplateResponse(
            request,
            "login.html",
            {
                "next": safe_next(next_url),
                "error": error,
                "lang": lang,
                "dir": text_direction(lang),
                "demo_credentials": container.demo_credentials if settings.demo_mode else (),
            },
            status_code=status,
        )

    @r.post("/login", include_in_schema=False)
    def login(
        request: Request,
        username: Annotated[str, Form(max_length=100)] = "",
        password: Annotated[str, Form(max_length=200)] = "",
        next: Annotated[str, Form(max_length=500)] = "/",
        lang: Annotated[str, Form(max_length=5)] = "en",
    ) -> Response:
        customer = container.auth.authenticate(username.strip().lower(), password)
        if customer is None:
            return _login(request, next, lang, error=True, status=401)
        request.session.clear()
        request.session[SESSION_KEY] = customer.id
        return RedirectResponse(safe_next(next), status_code=303)

    @r.post("/logout", include_in_schema=False)
    def logout(request: Request) -> Response:
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    @r.post("/api/chat")
    async def chat(request: Request, body: ChatIn) -> Response:
        """Send one message as the logged-in customer; returns the assistant's reply."""
        cid = current_customer(request)
        if cid is None:
            return JSONResponse({"error": "not_authenticated", "detail": "log in first"}, status_code=401)
        text = body.text.strip()
        if len(text) > settings.max_message_chars:
            return JSONResponse(
                {"error": "message_too_long", "detail": f"at most {settings.max_message_chars} characters"},
                status_code=413,
            )
        msg = InboundMessage(Channel.WEBCHAT, f"customer:{cid}", text, customer_id=cid, payload=body.payload)
        try:
            reply = await run_in_threadpool(container.assistant.handle, msg)
        except ValidationError as exc:
            return JSONResponse({"error": "invalid_message", "detail": str(exc)}, status_code=422)
        rendered = container.guard.prepare(Channel.WEBCHAT, cid, reply).rendered
        return JSONResponse({"reply": reply_json(rendered)})

    @r.get("/api/history")
    def history(request: Request) -> Response:
        """The logged-in customer's recent web chat turns, oldest first."""
        cid = current_customer(request)
        if cid is None:
            return JSONResponse({"error": "not_authenticated"}, status_code=401)
        turns = container.conversations.turns(Channel.WEBCHAT, f"customer:{cid}", limit=30)
        return JSONResponse(
            {
                "turns": [
                    {
                        "at": t.at.isoformat(),
                        "text": t.inbound_text,
                        "reply": t.reply_text,
                        "lang": t.language,
                        "dir": text_direction(t.language),
                    }
                    for t in turns
                ]
            }
        )

    return r
