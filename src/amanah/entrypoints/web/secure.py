"""The bank's secure pages: what a platform's agreement kept off the platform, and the privacy report.

* ``GET /secure/{token}``: opens a secure link. The customer must be logged in to the bank (else a
  redirect to ``/login?next=...`` and back). The link must be theirs, unused and unexpired; it is
  then marked used and its content shown once. Any refusal (unknown, used, expired, someone else's)
  gets the same page, with status 404, so it reveals nothing about the link.
* ``GET /privacy``: the logged-in customer's privacy report (``?channel=messenger`` for one platform).

Every page here is ``Cache-Control: no-store``.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from amanah.adapters.privacy.ledger import CategoryUse, PrivacyReport
from amanah.adapters.privacy.report import CATEGORY_LABELS, CHANNEL_LABELS, TREATMENT_LABELS
from amanah.adapters.privacy.secure_links import LinkPurpose
from amanah.app.i18n import format_day, lang_of, text_direction
from amanah.bootstrap import Container
from amanah.domain.conversation import Channel
from amanah.domain.errors import UnknownCustomer
from amanah.domain.text import to_eastern_digits
from amanah.entrypoints.web.webchat import current_customer

log = logging.getLogger(__name__)

_NO_STORE = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex, nofollow"}


def router(container: Container, templates: Jinja2Templates) -> APIRouter:
    r = APIRouter()
    guard = container.guard
    tz = ZoneInfo(container.settings.timezone)

    def to_login(request: Request, lang: str) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}&lang={lang}", status_code=303)

    def page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
        lang = lang_of(str(context.get("lang", "en")))
        context = {**context, "lang": lang, "dir": text_direction(lang)}
        response = templates.TemplateResponse(request, name, context, status_code=status)
        response.headers.update(_NO_STORE)
        return response

    def when(at: datetime, lang: str) -> str:
        local = at.astimezone(tz)
        clock = local.strftime("%H:%M")
        return f"{format_day(local.date(), lang)} {to_eastern_digits(clock) if lang == 'ar' else clock}"

    def report_context(report: PrivacyReport, lang: str) -> dict[str, Any]:
        def use(u: CategoryUse) -> dict[str, Any]:
            return {
                "category": CATEGORY_LABELS[u.category][lang],
                "treatment": TREATMENT_LABELS[u.treatment][lang],
                "count": to_eastern_digits(str(u.count)) if lang == "ar" else str(u.count),
                "first": when(u.first_at, lang),
                "last": when(u.last_at, lang),
            }

        return {
            "platform": CHANNEL_LABELS[report.channel][lang] if report.channel else None,
            "channels": [
                {
                    "name": CHANNEL_LABELS[c.channel][lang],
                    "messages": to_eastern_digits(str(c.messages)) if lang == "ar" else str(c.messages),
                    "first": when(c.first_at, lang),
                    "last": when(c.last_at, lang),
                    "agreements": c.agreements,
                    "received": [use(u) for u in c.received],
                    "withheld": [use(u) for u in c.withheld],
                }
                for c in report.channels
            ],
        }

    def customer_language(customer_id: int) -> str:
        try:
            return lang_of(container.core.customer(customer_id).language)
        except UnknownCustomer:
            return "en"

    @r.get("/secure/{token}", response_class=HTMLResponse, include_in_schema=False)
    def secure_page(request: Request, token: str, lang: str = "en") -> Response:
        lang = lang_of(lang)
        cid = current_customer(request, container)
        if cid is None:
            return to_login(request, lang)
        redemption = guard.secure_links.redeem(token, cid, guard.clock.now())
        if redemption.link is None:
            log.info("secure link refused: %s", redemption.refusal)
            return page(request, "secure_error.html", {"lang": lang}, status=404)
        link = redemption.link
        content = link.content
        lang = lang_of(str(content.get("language", lang)))
        if link.purpose is LinkPurpose.PRIVACY_REPORT:
            channel = _channel(content.get("channel"))
            report = guard.ledger.report(cid, channel)
            return page(request, "secure_report.html", {"lang": lang, **report_context(report, lang)})
        platform = _channel(content.get("channel"))
        return page(
            request,
            "secure.html",
            {
                "lang": lang,
                "text": str(content.get("text", "")),
                "text_dir": text_direction(str(content.get("language", lang))),
                "platform": CHANNEL_LABELS[platform][lang] if platform else None,
                "expires": when(link.expires_at, lang),
            },
        )

    @r.get("/privacy", response_class=HTMLResponse, include_in_schema=False)
    def privacy_page(request: Request, channel: str | None = None, lang: str | None = None) -> Response:
        cid = current_customer(request, container)
        if cid is None:
            return to_login(request, lang_of(lang or "en"))
        language = lang_of(lang) if lang else customer_language(cid)
        report = guard.ledger.report(cid, _channel(channel))
        return page(request, "secure_report.html", {"lang": language, **report_context(report, language)})

    return r


def _channel(value: object) -> Channel | None:
    try:
        channel = Channel(str(value)) if value else None
    except ValueError:
        return None
    return channel if channel is not None and channel.is_third_party else None
