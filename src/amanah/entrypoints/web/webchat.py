"""The bank's own web chat: a first-party channel behind the bank's login.

Sessions are server-side (``app/web_sessions.py``): the signed session cookie carries only an opaque
token under :data:`SESSION_KEY`; :func:`current_customer` looks it up on every request, so logout
(which revokes it), the idle timeout and the absolute lifetime end the session even for a copied
cookie. Every router asks :func:`current_customer` who is logged in.

``POST /login`` refuses cross-site posts (login CSRF; :func:`same_origin`, shared with the link pages)
and, after too many failures for the username or the client address, answers 429 without checking
the password.
"""

from __future__ import annotations

import secrets
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
from amanah.settings import Settings

SESSION_KEY = "sid"  # the session cookie's opaque token (see app/web_sessions.py)
CSRF_KEY = "csrf"  # the session's CSRF token, echoed by every form
ERRORS = {
    "wrong": {"en": "Wrong username or password.", "ar": "اسم المستخدم أو كلمة المرور غير صحيحة."},
    "throttled": {
        "en": "Too many failed attempts. For your security, logging in is paused: please try again in "
        "{minutes} minutes.",
        "ar": "محاولات فاشلة كثيرة. لحمايتك، أوقفنا تسجيل الدخول مؤقتاً: يرجى المحاولة بعد {minutes} دقيقة.",
    },
    "forbidden": {
        "en": "This login could not be verified. Please open the bank's login page and try again.",
        "ar": "تعذّر التحقق من تسجيل الدخول هذا. يرجى فتح صفحة تسجيل الدخول في البنك والمحاولة مرة أخرى.",
    },
}


def current_customer(request: Request, container: Container) -> int | None:
    """The customer logged in on this request's live server-side session, else None.

    A token that no longer opens a session (logged out, idle, expired, unknown) is dropped from the
    cookie; the rest of the cookie (e.g. the CSRF token) stays.
    """
    token = request.session.get(SESSION_KEY)
    if token is None:
        return None
    sessions = container.web_sessions
    customer_id = sessions.customer(token) if sessions is not None else None
    if customer_id is None:
        request.session.pop(SESSION_KEY, None)
    return customer_id


def end_session(request: Request, container: Container) -> None:
    """Revoke this request's server-side session (if any) and empty the cookie."""
    token = request.session.get(SESSION_KEY)
    if token is not None and container.web_sessions is not None:
        container.web_sessions.end(token)
    request.session.clear()


def _origin(url: str) -> str:
    parts = urlparse(url)
    return f"{parts.scheme}://{parts.netloc}"


def csrf_token(request: Request) -> str:
    """This session's CSRF token for forms (created on first use)."""
    token = request.session.get(CSRF_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session[CSRF_KEY] = token
    return token


def csrf_ok(request: Request, token: str) -> bool:
    """True if ``token`` (from a form) is this session's CSRF token."""
    expected = request.session.get(CSRF_KEY)
    if not isinstance(expected, str) or not token or not token.isascii():
        return False
    return secrets.compare_digest(expected.encode(), token.encode())


def same_origin(request: Request, settings: Settings, *, token_ok: bool = False) -> bool:
    """False for a request a browser says came from another site (state-changing POSTs refuse those).

    Browsers with Fetch Metadata say where a request came from in ``Sec-Fetch-Site`` (which no page
    can forge): only ``same-origin`` and ``none`` (typed or bookmarked) pass. Without it, ``Origin``
    must be the bank's own (as reached, or ``AMANAH_PUBLIC_BASE_URL``); ``Origin: null`` (what our
    pages' ``no-referrer`` policy makes a browser send, and also what sandboxed frames send) passes only
    with the session's CSRF token (``token_ok``). A request with neither header (a non-browser client)
    passes: it cannot carry a victim's cookie, which is ``SameSite=Lax`` besides.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return True
    if origin == "null":
        return token_ok
    own = {f"{request.url.scheme}://{request.url.netloc}", _origin(settings.base_url)}
    return origin in own


def client_address(request: Request) -> str | None:
    """The client's address as the server sees it (uvicorn applies trusted proxy headers)."""
    return request.client.host if request.client is not None else None


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

    throttle = container.login_throttle

    @r.get("/", response_class=HTMLResponse, include_in_schema=False)
    def chat_page(request: Request) -> Response:
        cid = current_customer(request, container)
        if cid is None:
            return RedirectResponse("/login", status_code=303)
        try:
            customer = container.core.customer(cid)
        except UnknownCustomer:
            end_session(request, container)
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
        return _login(request, next, lang, error=None, status=200)

    def _login(
        request: Request, next_url: str | None, lang: str, error: str | None, status: int, wait_s: int = 0
    ) -> Response:
        lang = "ar" if lang == "ar" else "en"
        message = None
        if error is not None:
            minutes = str(max(1, -(-wait_s // 60)))
            message = ERRORS[error][lang].replace("{minutes}", minutes)
        response = templates.TemplateResponse(
            request,
            "login.html",
            {
                "next": safe_next(next_url),
                "error": error,
                "error_message": message,
                "csrf": csrf_token(request),
                "lang": lang,
                "dir": text_direction(lang),
                "demo_credentials": container.demo_credentials if settings.demo_mode else (),
            },
            status_code=status,
        )
        response.headers["Cache-Control"] = "no-store"
        if wait_s:
            response.headers["Retry-After"] = str(wait_s)
        return response

    @r.post("/login", include_in_schema=False)
    def login(
        request: Request,
        username: Annotated[str, Form(max_length=100)] = "",
        password: Annotated[str, Form(max_length=200)] = "",
        next: Annotated[str, Form(max_length=500)] = "/",
        lang: Annotated[str, Form(max_length=5)] = "en",
        csrf: Annotated[str, Form(max_length=100)] = "",
    ) -> Response:
        if not same_origin(request, settings, token_ok=csrf_ok(request, csrf)):
            return _login(request, next, lang, error="forbidden", status=403)
        name = username.strip().lower()
        address = client_address(request)
        if throttle is not None:
            wait = throttle.retry_after(name, address)
            if wait is not None:  # the password is not even checked
                return _login(request, next, lang, error="throttled", status=429, wait_s=wait)
        customer = container.auth.authenticate(name, password)
        if customer is None:
            if throttle is not None:
                throttle.failed(name, address)
            return _login(request, next, lang, error="wrong", status=401)
        if throttle is not None:
            throttle.succeeded(name)
        if container.web_sessions is None:  # pragma: no cover - bootstrap always wires it
            raise RuntimeError("the web chat needs container.web_sessions")
        end_session(request, container)  # a fresh session for every login: no fixation
        request.session[SESSION_KEY] = container.web_sessions.start(customer.id)
        return RedirectResponse(safe_next(next), status_code=303)

    @r.post("/logout", include_in_schema=False)
    def logout(request: Request) -> Response:
        # No origin check: a cross-site POST does not carry the SameSite=Lax cookie, so it ends nothing.
        end_session(request, container)
        return RedirectResponse("/login", status_code=303)

    @r.post("/api/chat")
    async def chat(request: Request, body: ChatIn) -> Response:
        """Send one message as the logged-in customer; returns the assistant's reply."""
        cid = await run_in_threadpool(current_customer, request, container)
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
        cid = current_customer(request, container)
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
