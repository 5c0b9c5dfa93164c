"""The bank's own pages for linking Messenger and WhatsApp, and for withdrawing consent.

* ``/link/messenger``: Messenger's ``account_link`` button opens it with ``account_linking_token`` and
  ``redirect_uri`` (Messenger's account-linking callback), and our signed ``state`` (required). Login, consent, then back to ``redirect_uri`` with a
  one-time ``authorization_code`` (accept) or without one (decline).
* ``/link/messenger/context``: Messenger on the web and desktop, where the ``account_link`` button does
  not work. A URL button (``messenger_extensions: true``) opens this page in Messenger's webview; its
  script asks ``MessengerExtensions.getContext`` for a ``signed_request`` and posts it back. Once
  verified (Meta's HMAC with the app secret, at most 5 minutes old, our Page), the PSID is kept in a
  short-lived signed cookie while the customer logs in and consents
  (``/link/messenger/context/consent``); accepting binds it. Only this entry page may be framed, and
  only by messenger.com and facebook.com (Messenger's desktop webview is a frame).
* ``/link/whatsapp?token=``: the one-time link sent in a WhatsApp chat. Login, consent, binding.
* ``/settings/channels``: the customer's linked apps and consent history, with a withdraw button.

Every state-changing request is a POST carrying a per-session CSRF token; a cross-site ``Origin`` is
refused, and the session cookie is ``SameSite=Lax``. Pages cannot be framed. ``redirect_uri`` must
be https on an allowed host: never an open redirect.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from itsdangerous import BadSignature, URLSafeTimedSerializer

from amanah.adapters.channels import messenger as messenger_channel
from amanah.adapters.channels.meta import (
    SecretMatch,
    SignedRequestError,
    note_previous_secret,
    verify_signed_request,
)
from amanah.app.i18n import format_day, lang_of, text_direction
from amanah.app.linking import LinkingService, looks_like_secret, with_query
from amanah.bootstrap import Container
from amanah.domain.banking import Customer
from amanah.domain.conversation import Channel
from amanah.domain.errors import UnknownCustomer, ValidationError
from amanah.domain.linking import WithdrawalMethod
from amanah.entrypoints.web.webchat import csrf_ok, csrf_token, end_session, same_origin
from amanah.entrypoints.web.webchat import current_customer as customer_of

log = logging.getLogger(__name__)

RESUME_COOKIE = "amanah_link_resume"
RESUME_MAX_AGE_S = 900
MAX_NEXT = 500  # the login form accepts a `next` of at most this many characters
_CONSENT_ID_RE = re.compile(r"[0-9]{1,12}")  # ASCII digits only: "²".isdigit() is True
CONTEXT_PATH = "/link/messenger/context"  # the Messenger webview's entry page (signed_request)
CONTEXT_CONSENT_PATH = CONTEXT_PATH + "/consent"
CONTEXT_COOKIE = "amanah_link_context"  # the verified PSID while the customer logs in and consents
CONTEXT_TTL_S = 900
MESSENGER_EXTENSIONS_SDK = "https://connect.facebook.net/en_US/messenger.Extensions.js"
MESSENGER_WEBVIEW_ANCESTORS = "https://www.messenger.com https://www.facebook.com"

PLATFORM = {
    Channel.MESSENGER: {"en": "Facebook Messenger", "ar": "فيسبوك ماسنجر"},
    Channel.WHATSAPP: {"en": "WhatsApp", "ar": "واتساب"},
}
WITHDRAWN = {
    "chat": {"en": "in the chat", "ar": "من المحادثة"},
    "platform_unlink": {"en": "from the app", "ar": "من التطبيق"},
    "website": {"en": "on the bank's website", "ar": "من موقع البنك"},
    "operator_cli": {"en": "by the bank", "ar": "من قِبل البنك"},
    "relinked": {"en": "replaced by a new link", "ar": "استُبدل بربط جديد"},
}
PROBLEMS = {
    "bad_link": {
        "en": "This link is not valid. Please start again from the button in the chat.",
        "ar": "هذا الرابط غير صالح. يرجى البدء من جديد من الزر في المحادثة.",
    },
    "expired": {
        "en": "This link has expired or was already used. Ask about your accounts in the chat to get a new one.",
        "ar": "انتهت صلاحية هذا الرابط أو سبق استخدامه. اسأل عن حساباتك في المحادثة لتحصل على رابط جديد.",
    },
    "forbidden": {
        "en": "This request could not be verified. Please go back and try again.",
        "ar": "تعذّر التحقق من هذا الطلب. يرجى الرجوع والمحاولة مرة أخرى.",
    },
    "context_expired": {
        "en": "This page has expired. Please open it again from the button in Messenger.",
        "ar": "انتهت صلاحية هذه الصفحة. يرجى فتحها من جديد من الزر في ماسنجر.",
    },
}
NO_FRAMES = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}


def _pick(texts: Mapping[str, str], lang: str) -> str:
    return texts.get(lang) or texts["en"]


def mask_user_id(user_id: str) -> str:
    """Only the last four characters of a PSID / wa_id are shown, even to its owner."""
    return "•••• " + user_id[-4:]


def router(container: Container, templates: Jinja2Templates) -> APIRouter:
    r = APIRouter()
    settings = container.settings
    linking: LinkingService | None = getattr(container, "linking", None)
    if linking is None:  # pragma: no cover - bootstrap always wires it
        raise RuntimeError("the linking router needs container.linking")
    resume_signer = URLSafeTimedSerializer(
        settings.session_secret.get_secret_value(), salt="amanah-link-resume"
    )
    context_signer = URLSafeTimedSerializer(
        settings.session_secret.get_secret_value(), salt="amanah-link-messenger-context"
    )
    https = settings.base_url.startswith("https://")

    # -- helpers ------------------------------------------------------------------------------

    def current_customer(request: Request) -> Customer | None:
        cid = customer_of(request, container)
        if cid is None:
            return None
        try:
            return container.core.customer(cid)
        except UnknownCustomer:
            end_session(request, container)
            return None

    def guess_lang(request: Request, lang: str | None, customer: Customer | None = None) -> str:
        if lang in ("en", "ar"):
            return lang
        if customer is not None:
            return lang_of(customer.language)
        return "ar" if request.headers.get("accept-language", "").lower().startswith("ar") else "en"

    def post_ok(request: Request, token: str) -> bool:
        return csrf_ok(request, token) and same_origin(request, settings, token_ok=True)

    def page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
        lang = str(context.get("lang", "en"))
        context = {"dir": text_direction(lang), "platform_name": PLATFORM, "pick": _pick, **context}
        response = templates.TemplateResponse(request, name, context, status_code=status)
        response.headers.update(NO_FRAMES)
        return response

    def problem(request: Request, lang: str, status: int, key: str) -> Response:
        return page(
            request,
            "link_error.html",
            {"lang": lang, "message": _pick(PROBLEMS[key], lang), "problem": key},
            status=status,
        )

    def to_login(request: Request, target: str, lang: str) -> Response:
        """Send the visitor to the bank's login, coming back to ``target`` (a same-site path)."""
        if len(target) <= MAX_NEXT:
            return RedirectResponse(f"/login?next={quote(target, safe='')}&lang={lang}", status_code=303)
        # Too long for the login form's `next`: keep it in a signed, short-lived cookie instead. (The
        # session cannot hold it: logging in starts a fresh session.)
        response = RedirectResponse(
            f"/login?next={quote('/link/resume', safe='')}&lang={lang}", status_code=303
        )
        response.set_cookie(
            RESUME_COOKIE,
            resume_signer.dumps(target),
            max_age=RESUME_MAX_AGE_S,
            path="/link",
            httponly=True,
            samesite="lax",
            secure=https,
        )
        return response

    def consent_page(
        request: Request,
        customer: Customer,
        channel: Channel,
        lang: str,
        action: str,
        hidden: dict[str, str],
        target: str | None = None,
        status: int = 200,
        changed: bool = False,
    ) -> Response:
        assert linking is not None
        agreement = linking.agreement(channel)
        return page(
            request,
            "consent.html",
            {
                "lang": lang,
                "customer": customer,
                "channel": channel.value,
                "platform": _pick(PLATFORM[channel], lang),
                "consent": linking.consent_text(channel, lang),
                "agreement": agreement,
                "action": action,
                "hidden": hidden,
                "target": target,
                "csrf": csrf_token(request),
                "changed": changed,
                "other_lang_url": switch_lang_url(request, lang),
            },
            status=status,
        )

    def switch_lang_url(request: Request, lang: str) -> str:
        """This page in the other language, as a same-site relative URL."""
        url = request.url.include_query_params(lang="en" if lang == "ar" else "ar")
        return url.path + "?" + url.query

    def this_url(request: Request) -> str:
        query = request.url.query
        return request.url.path + ("?" + query if query else "")

    def messenger_inputs(token: str, redirect_uri: str, state: str) -> str:
        """Validate Messenger's parameters; returns the PSID our signed ``state`` is bound to."""
        assert linking is not None
        linking.check_redirect_uri(redirect_uri)
        linking.check_linking_token(token)
        return linking.check_state(state)

    def messenger_target(token: str, redirect_uri: str, state: str) -> str:
        query = {"account_linking_token": token, "redirect_uri": redirect_uri, "state": state}
        return "/link/messenger?" + urlencode(query)

    # -- Messenger ----------------------------------------------------------------------------

    @r.get("/link/messenger", response_class=HTMLResponse, include_in_schema=False)
    def messenger_page(
        request: Request,
        account_linking_token: str = "",
        redirect_uri: str = "",
        state: str = "",
        lang: str | None = None,
    ) -> Response:
        customer = current_customer(request)
        language = guess_lang(request, lang, customer)
        try:
            messenger_inputs(account_linking_token, redirect_uri, state)
        except ValidationError:
            return problem(request, language, 400, "bad_link")
        if customer is None:
            return to_login(request, this_url(request), language)
        hidden = {
            "account_linking_token": account_linking_token,
            "redirect_uri": redirect_uri,
            "state": state,
        }
        return consent_page(request, customer, Channel.MESSENGER, language, "/link/messenger", hidden)

    @r.post("/link/messenger", include_in_schema=False)
    def messenger_decide(
        request: Request,
        account_linking_token: Annotated[str, Form(max_length=1000)] = "",
        redirect_uri: Annotated[str, Form(max_length=2048)] = "",
        state: Annotated[str, Form(max_length=300)] = "",
        decision: Annotated[str, Form(max_length=10)] = "",
        agreement: Annotated[str, Form(max_length=200)] = "",
        lang: Annotated[str, Form(max_length=5)] = "",
        csrf: Annotated[str, Form(max_length=100)] = "",
    ) -> Response:
        assert linking is not None
        customer = current_customer(request)
        language = guess_lang(request, lang, customer)
        try:
            psid = messenger_inputs(account_linking_token, redirect_uri, state)
        except ValidationError:
            return problem(request, language, 400, "bad_link")
        target = messenger_target(account_linking_token, redirect_uri, state)
        if customer is None:
            return to_login(request, target, language)
        if not post_ok(request, csrf):
            return problem(request, language, 403, "forbidden")
        if decision == "decline":
            return RedirectResponse(_without(redirect_uri, "authorization_code"), status_code=303)
        if decision != "accept":
            return problem(request, language, 400, "bad_link")
        if agreement != linking.agreement(Channel.MESSENGER).label:  # terms changed while the page was open
            hidden = {
                "account_linking_token": account_linking_token,
                "redirect_uri": redirect_uri,
                "state": state,
            }
            return consent_page(
                request,
                customer,
                Channel.MESSENGER,
                language,
                "/link/messenger",
                hidden,
                status=409,
                changed=True,
            )
        code = linking.issue_authorization_code(customer.id, account_linking_token, psid=psid)
        return RedirectResponse(with_query(redirect_uri, authorization_code=code), status_code=303)

    @r.get("/link/resume", include_in_schema=False)
    def resume(request: Request, lang: str | None = None) -> Response:
        """Back from the login page when the link URL was too long to travel in ``next``."""
        language = guess_lang(request, lang, current_customer(request))
        raw = request.cookies.get(RESUME_COOKIE, "")
        try:
            target = resume_signer.loads(raw, max_age=RESUME_MAX_AGE_S) if raw else None
        except BadSignature:
            target = None
        if (
            not isinstance(target, str)
            or not target.startswith("/link/")
            or target.startswith("/link/resume")
        ):
            return problem(request, language, 400, "expired")
        response = RedirectResponse(target, status_code=303)
        response.delete_cookie(RESUME_COOKIE, path="/link")
        return response

    # -- Messenger on the web and desktop: Messenger Extensions signed_request -----------------

    def context_psid(request: Request) -> str | None:
        """The PSID a verified signed_request left in this browser's context cookie, if still fresh."""
        raw = request.cookies.get(CONTEXT_COOKIE, "")
        try:
            doc = context_signer.loads(raw, max_age=CONTEXT_TTL_S) if raw else None
        except BadSignature:
            return None
        psid = doc.get("psid") if isinstance(doc, dict) else None
        return psid if isinstance(psid, str) and psid else None

    def forget_context(response: Response) -> Response:
        response.delete_cookie(CONTEXT_COOKIE, path=CONTEXT_PATH, secure=https, httponly=True, samesite="lax")
        return response

    @r.get(CONTEXT_PATH, response_class=HTMLResponse, include_in_schema=False)
    def messenger_context_page(request: Request, lang: str | None = None) -> Response:
        """The page a ``messenger_extensions`` URL button opens; its script gets the signed_request."""
        language = guess_lang(request, lang)
        app_id = settings.messenger_app_id
        sdk = MESSENGER_EXTENSIONS_SDK if app_id else ""  # the SDK is loaded only when configured
        response = page(
            request,
            "link_context.html",
            {
                "lang": language,
                "app_id": app_id,
                "sdk_url": sdk,
                "other_lang_url": switch_lang_url(request, language),
            },
        )
        scripts = "'self'" + (" " + _origin_of(sdk) if sdk else "")
        response.headers["Content-Security-Policy"] = (
            f"frame-ancestors {MESSENGER_WEBVIEW_ANCESTORS}; script-src {scripts}; "
            "object-src 'none'; base-uri 'none'; form-action 'self'"
        )
        # Messenger's desktop webview frames this page: X-Frame-Options cannot name two origins, so the
        # CSP above decides (ALLOW-FROM is what Meta documents; current browsers ignore it).
        response.headers["X-Frame-Options"] = "ALLOW-FROM https://www.messenger.com/"
        return response

    @r.post(CONTEXT_PATH, include_in_schema=False)
    def messenger_context_verify(
        request: Request,
        signed_request: Annotated[str, Form(max_length=20_000)] = "",
        lang: Annotated[str, Form(max_length=5)] = "",
    ) -> Response:
        """Verify the page's signed_request; on success keep its PSID and go on to login and consent."""
        language = guess_lang(request, lang, current_customer(request))
        if not same_origin(request, settings):
            return problem(request, language, 403, "forbidden")
        try:
            context = verify_signed_request(
                signed_request,
                messenger_channel.app_secrets(settings),
                now=container.clock.now(),
                page_id=settings.messenger_page_id,
            )
        except SignedRequestError as exc:
            log.info("messenger signed_request refused: %s", exc.reason)
            key = "context_expired" if exc.reason in ("stale", "future") else "bad_link"
            return problem(request, language, exc.status, key)
        if context.secret is SecretMatch.PREVIOUS:
            note_previous_secret("messenger", "signed_request")
        response = RedirectResponse(f"{CONTEXT_CONSENT_PATH}?lang={language}", status_code=303)
        response.set_cookie(
            CONTEXT_COOKIE,
            context_signer.dumps({"psid": context.psid}),
            max_age=CONTEXT_TTL_S,
            path=CONTEXT_PATH,
            httponly=True,
            samesite="lax",
            secure=https,
        )
        return response

    @r.get(CONTEXT_CONSENT_PATH, response_class=HTMLResponse, include_in_schema=False)
    def messenger_context_consent(request: Request, lang: str | None = None) -> Response:
        customer = current_customer(request)
        language = guess_lang(request, lang, customer)
        if context_psid(request) is None:
            return problem(request, language, 410, "context_expired")
        if customer is None:
            return to_login(request, this_url(request), language)
        return consent_page(request, customer, Channel.MESSENGER, language, CONTEXT_CONSENT_PATH, {})

    @r.post(CONTEXT_CONSENT_PATH, include_in_schema=False)
    def messenger_context_decide(
        request: Request,
        decision: Annotated[str, Form(max_length=10)] = "",
        agreement: Annotated[str, Form(max_length=200)] = "",
        lang: Annotated[str, Form(max_length=5)] = "",
        csrf: Annotated[str, Form(max_length=100)] = "",
    ) -> Response:
        assert linking is not None
        customer = current_customer(request)
        language = guess_lang(request, lang, customer)
        psid = context_psid(request)
        if psid is None:
            return problem(request, language, 410, "context_expired")
        if customer is None:
            return to_login(request, CONTEXT_CONSENT_PATH, language)
        if not post_ok(request, csrf):
            return problem(request, language, 403, "forbidden")
        if decision not in ("accept", "decline"):
            return problem(request, language, 400, "bad_link")
        done = {
            "lang": language,
            "channel": "messenger",
            "platform": _pick(PLATFORM[Channel.MESSENGER], language),
        }
        if decision == "decline":
            return forget_context(page(request, "link_done.html", {**done, "outcome": "declined"}))
        if agreement != linking.agreement(Channel.MESSENGER).label:  # terms changed while the page was open
            return consent_page(
                request,
                customer,
                Channel.MESSENGER,
                language,
                CONTEXT_CONSENT_PATH,
                {},
                status=409,
                changed=True,
            )
        try:
            linking.complete_messenger_extensions(psid, customer.id)
        except ValidationError:
            return forget_context(problem(request, language, 400, "bad_link"))
        return forget_context(page(request, "link_done.html", {**done, "outcome": "linked"}))

    # -- WhatsApp -----------------------------------------------------------------------------

    @r.get("/link/whatsapp", response_class=HTMLResponse, include_in_schema=False)
    def whatsapp_page(request: Request, token: str = "", lang: str | None = None) -> Response:
        assert linking is not None
        customer = current_customer(request)
        language = guess_lang(request, lang, customer)
        if not looks_like_secret(token):
            return problem(request, language, 400, "bad_link")
        grant = linking.whatsapp_pending(token)
        if grant is None:
            return problem(request, language, 410, "expired")
        if customer is None:
            return to_login(request, this_url(request), language)
        return consent_page(
            request,
            customer,
            Channel.WHATSAPP,
            language,
            "/link/whatsapp",
            {"token": token},
            target=mask_user_id(grant.user_id or ""),
        )

    @r.post("/link/whatsapp", include_in_schema=False)
    def whatsapp_decide(
        request: Request,
        token: Annotated[str, Form(max_length=200)] = "",
        decision: Annotated[str, Form(max_length=10)] = "",
        agreement: Annotated[str, Form(max_length=200)] = "",
        lang: Annotated[str, Form(max_length=5)] = "",
        csrf: Annotated[str, Form(max_length=100)] = "",
    ) -> Response:
        assert linking is not None
        customer = current_customer(request)
        language = guess_lang(request, lang, customer)
        if not looks_like_secret(token):
            return problem(request, language, 400, "bad_link")
        if customer is None:
            return to_login(request, "/link/whatsapp?" + urlencode({"token": token}), language)
        if not post_ok(request, csrf):
            return problem(request, language, 403, "forbidden")
        if decision not in ("accept", "decline"):
            return problem(request, language, 400, "bad_link")
        done = {
            "lang": language,
            "channel": "whatsapp",
            "platform": _pick(PLATFORM[Channel.WHATSAPP], language),
        }
        if decision == "decline":
            linking.decline_whatsapp(token)
            return page(request, "link_done.html", {**done, "outcome": "declined"})
        if agreement != linking.agreement(Channel.WHATSAPP).label:
            grant = linking.whatsapp_pending(token)
            if grant is None:
                return problem(request, language, 410, "expired")
            return consent_page(
                request,
                customer,
                Channel.WHATSAPP,
                language,
                "/link/whatsapp",
                {"token": token},
                target=mask_user_id(grant.user_id or ""),
                status=409,
                changed=True,
            )
        binding = linking.complete_whatsapp(token, customer.id)
        if binding is None:
            return problem(request, language, 410, "expired")
        return page(
            request, "link_done.html", {**done, "outcome": "linked", "target": mask_user_id(binding.user_id)}
        )

    # -- the customer's linked apps --------------------------------------------------------------

    @r.get("/settings/channels", response_class=HTMLResponse, include_in_schema=False)
    def channels_page(request: Request, lang: str | None = None, done: str | None = None) -> Response:
        assert linking is not None
        customer = current_customer(request)
        language = guess_lang(request, lang, customer)
        if customer is None:
            return to_login(request, "/settings/channels", language)
        bindings = [
            {
                "consent_id": b.consent_id,
                "platform": _pick(PLATFORM[b.channel], language),
                "who": mask_user_id(b.user_id),
                "since": format_day(b.linked_at.date(), language),
                "agreement": f"{b.agreement_id} {b.agreement_version}",
            }
            for b in linking.bindings(customer.id)
            if b.channel in PLATFORM
        ]
        history = [
            {
                "platform": _pick(PLATFORM[c.channel], language),
                "who": mask_user_id(c.user_id),
                "given": format_day(c.given_at.date(), language),
                "agreement": f"{c.agreement_id} {c.agreement_version}",
                "withdrawn": format_day(c.withdrawn_at.date(), language) if c.withdrawn_at else "",
                "how": _pick(WITHDRAWN.get(c.withdrawn_how.value, {"en": c.withdrawn_how.value}), language)
                if c.withdrawn_how
                else "",
            }
            for c in linking.consents(customer.id)
            if c.channel in PLATFORM
        ]
        return page(
            request,
            "channels.html",
            {
                "lang": language,
                "customer": customer,
                "bindings": bindings,
                "history": history,
                "done": done,
                "csrf": csrf_token(request),
                "other_lang_url": switch_lang_url(request, language),
            },
        )

    @r.post("/settings/channels/unlink", include_in_schema=False)
    def channels_unlink(
        request: Request,
        consent_id: Annotated[str, Form(max_length=20)] = "",
        csrf: Annotated[str, Form(max_length=100)] = "",
        lang: Annotated[str, Form(max_length=5)] = "",
    ) -> Response:
        assert linking is not None
        customer = current_customer(request)
        language = guess_lang(request, lang, customer)
        if customer is None:
            return to_login(request, "/settings/channels", language)
        if not post_ok(request, csrf):
            return problem(request, language, 403, "forbidden")
        if not _CONSENT_ID_RE.fullmatch(consent_id):
            return problem(request, language, 400, "bad_link")
        removed = linking.unlink_own(customer.id, int(consent_id), WithdrawalMethod.WEBSITE)
        return RedirectResponse(f"/settings/channels?done={'1' if removed else '0'}", status_code=303)

    return r


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _without(url: str, name: str) -> str:
    """``url`` without the query parameter ``name`` (the redirect_uri was already validated)."""
    parts = urlsplit(url)
    if name not in parts.query:
        return url
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != name]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))
