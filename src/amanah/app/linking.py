"""Linking Messenger and WhatsApp users to bank customers, with consent given on the bank's own site.

The platform is never an authentication factor. A PSID or wa_id identifies a customer only through a
:class:`~amanah.domain.linking.Binding`, created after the customer logged in to the bank's site and
accepted the platform's data-sharing terms (or recorded by an operator), and removed the moment the
customer withdraws (in the chat, on the platform, on the bank's site, or through an operator).

Messenger (Account Linking)::

    account_link button -> /link/messenger?state=..&account_linking_token=..&redirect_uri=..
    -> bank login -> consent page -> accept -> redirect_uri&authorization_code=<one-time code>
    -> webhook account_linking{linked, code} from the PSID -> complete_messenger(psid, code)

Messenger on the web and desktop (Account Linking works only in the mobile apps)::

    URL button (messenger_extensions) -> /link/messenger/context: MessengerExtensions.getContext
    -> POST signed_request (verified by the entrypoint: HMAC with the app secret, age, Page)
    -> bank login -> consent page -> accept -> complete_messenger_extensions(psid, customer) -> binding

WhatsApp (no linking protocol)::

    link in the chat -> /link/whatsapp?token=<one-time token bound to the wa_id>
    -> bank login -> consent page -> accept -> complete_whatsapp(token, customer) -> binding

One-time secrets are 256-bit random, stored only as SHA-256 hashes, single use and short-lived. The
Messenger ``state`` parameter is an HMAC over the PSID the button was sent to (and is required), so a
code can only complete a link from that PSID; ``redirect_uri`` must be Messenger's account-linking
callback on an allowed host.

A binding stands only while its consent was to the channel's *current* agreement: after the
agreement changes, :meth:`LinkingService.customer_for` treats the user as unlinked until the customer
consents to the new version (linking again replaces the old binding, withdrawn as ``relinked``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from amanah.app.assistant import TurnContext
from amanah.app.commands import InboundMessage
from amanah.app.messages import label
from amanah.app.ports import Clock, LinkStore
from amanah.domain.agreements import Agreement, ConsentText
from amanah.domain.conversation import Channel
from amanah.domain.errors import ConfigurationError, ValidationError
from amanah.domain.linking import (
    LINKABLE_CHANNELS,
    Binding,
    ConsentMethod,
    ConsentRecord,
    GrantKind,
    LinkGrant,
    WithdrawalMethod,
)
from amanah.domain.replies import FreeText, LinkButton, QuickReply, Reply, Say
from amanah.domain.text import normalize

log = logging.getLogger(__name__)

DEFAULT_REDIRECT_HOSTS = ("facebook.com", "messenger.com")
CODE_TTL_S = 300  # Messenger authorization_code: the webhook follows the redirect within seconds
WHATSAPP_TOKEN_TTL_S = 900  # the customer may need to log in first
STATE_TTL_S = 24 * 3600  # an account_link button stays usable for a day (the messaging window)
MAX_USER_ID = 200
MAX_LINKING_TOKEN = 1000
MAX_REDIRECT_URI = 2048

MESSENGER_LINK_PATH = "/link/messenger"
WHATSAPP_LINK_PATH = "/link/whatsapp"
SETTINGS_PATH = "/settings/channels"

# Messenger's account-linking callback: redirect_uri must be this path on an allowed host.
MESSENGER_REDIRECT_PATHS = ("/messenger_platform/account_linking/", "/messenger_platform/account_linking")

_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{32,128}")  # always fullmatch: "$" would allow a final newline
_PSID_RE = re.compile(r"[A-Za-z0-9_:-]{1,200}")
_EXPIRY_RE = re.compile(r"[0-9]{1,12}")  # ASCII digits only: "²".isdigit() is True, int("²") raises
_UNLINK_WORDS = frozenset(
    normalize(w)
    for w in ("unlink", "stop", "unlink me", "unlink my account", "ألغِ الربط", "إلغاء الربط", "الغي الربط")
)

TEXTS: dict[str, dict[str, str]] = {
    "unlinked": {
        "en": "Done. This chat is no longer linked to your bank account, and I won't show any of your "
        "account information here. You can link it again at any time by asking about your accounts.",
        "ar": "تم. لم تعد هذه المحادثة مرتبطة بحسابك البنكي، ولن أعرض هنا أي معلومات عن حساباتك. "
        "يمكنك ربطها من جديد في أي وقت عندما تسأل عن حساباتك.",
    },
    "unlink_confirm": {
        "en": 'Do you want to unlink this chat from your bank account? Tap "Unlink" to confirm.',
        "ar": "هل تريد إلغاء ربط هذه المحادثة بحسابك البنكي؟ اضغط «إلغاء الربط» للتأكيد.",
    },
    "first_party": {
        "en": "This is the bank's own chat, so there is nothing to unlink here. You can see and withdraw "
        "the apps linked to your account on the bank's website.",
        "ar": "هذه محادثة البنك الخاصة، فلا يوجد ما يُلغى ربطه هنا. يمكنك مراجعة التطبيقات المرتبطة بحسابك "
        "وإلغاء ربطها من موقع البنك.",
    },
    "linked_apps": {"en": "Linked apps", "ar": "التطبيقات المرتبطة"},
}


def text(key: str, language: str) -> str:
    entry = TEXTS[key]
    return entry.get(language) or entry["en"]


def hash_secret(secret: str) -> str:
    """The SHA-256 hex digest stored for a one-time secret (the secret itself is never stored)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_secret() -> str:
    """256 bits from the OS CSPRNG, URL-safe (43 characters)."""
    return secrets.token_urlsafe(32)


def looks_like_secret(value: str | None) -> bool:
    return bool(value) and _SECRET_RE.fullmatch(value or "") is not None


def with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` set in its query (replacing any of the same name), fragment dropped."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query.extend(params.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


UnlinkListener = Callable[[Binding, WithdrawalMethod], None]


class LinkingService:
    """Bindings, consent, and the one-time secrets of the linking flows. Thread-safe if the store is."""

    def __init__(
        self,
        store: LinkStore,
        agreements: Mapping[Channel, Agreement],
        clock: Clock,
        *,
        base_url: str,
        secret: bytes | str,
        redirect_hosts: Iterable[str] = DEFAULT_REDIRECT_HOSTS,
        redirect_paths: Iterable[str] = MESSENGER_REDIRECT_PATHS,
        code_ttl_s: int = CODE_TTL_S,
        whatsapp_token_ttl_s: int = WHATSAPP_TOKEN_TTL_S,
        state_ttl_s: int = STATE_TTL_S,
        confirm_below: float = 0.6,
    ) -> None:
        self.store = store
        self.agreements = agreements
        self.clock = clock
        self.base_url = base_url.rstrip("/")
        raw = secret.encode("utf-8") if isinstance(secret, str) else secret
        self._state_key = hashlib.sha256(b"amanah-link-state\x00" + raw).digest()
        self.redirect_hosts = tuple(h.strip().lower().strip(".") for h in redirect_hosts if h.strip())
        self.redirect_paths = frozenset(redirect_paths)
        self.code_ttl = timedelta(seconds=code_ttl_s)
        self.whatsapp_token_ttl = timedelta(seconds=whatsapp_token_ttl_s)
        self.state_ttl_s = state_ttl_s
        self.confirm_below = confirm_below
        self.unlink_listeners: list[UnlinkListener] = []
        for channel in LINKABLE_CHANNELS:
            self.agreement(channel)  # fail at start-up, not in the middle of a customer's flow

    # -- agreements ---------------------------------------------------------------------------

    def agreement(self, channel: Channel) -> Agreement:
        found = self.agreements.get(Channel(channel))
        if found is None:
            raise ConfigurationError(f"no data-sharing agreement for channel {channel}")
        return found

    def consent_text(self, channel: Channel, language: str) -> ConsentText:
        """The agreement's plain-words consent text in ``language`` (English if that one is missing)."""
        consent = self.agreement(channel).consent
        found = consent.get(language) or consent.get("en")
        if found is None:
            raise ConfigurationError(f"the {channel} agreement has no consent text")
        return found

    # -- who is this platform user? -----------------------------------------------------------

    def binding(self, channel: Channel, user_id: str) -> Binding | None:
        return self.store.binding(channel, user_id)

    def customer_for(self, channel: Channel, user_id: str) -> int | None:
        """The customer a platform user is linked to with standing consent, else None.

        Consent is to one version of the channel's agreement: once the agreement changes, a binding
        made under another version identifies nobody (the user gets public service only, and the link
        button leads to consent to the new version) until the customer links again.
        """
        found = self.store.binding(channel, user_id)
        if found is None or not self.is_current(found):
            return None
        return found.customer_id

    def is_current(self, binding: Binding) -> bool:
        """True if the binding's consent was to the channel's current agreement (id and version)."""
        agreement = self.agreements.get(Channel(binding.channel))
        return (
            agreement is not None
            and binding.agreement_id == agreement.id
            and binding.agreement_version == agreement.version
        )

    def bindings(self, customer_id: int) -> Sequence[Binding]:
        return self.store.bindings_of(customer_id)

    def consents(self, customer_id: int) -> Sequence[ConsentRecord]:
        """Every consent record of the customer, withdrawn ones too, newest first."""
        return self.store.consents(customer_id)

    # -- link URLs ----------------------------------------------------------------------------

    def messenger_link_url(self, psid: str | None = None) -> str:
        """The URL for Messenger's ``account_link`` button (Messenger appends its own parameters).

        With ``psid``, it carries a signed ``state`` so only that PSID can complete the link.
        """
        url = self.base_url + MESSENGER_LINK_PATH
        if psid:
            try:
                url = with_query(url, state=self._sign_state(psid))
            except ValidationError:
                log.warning("PSID with unexpected characters: link button sent without state")
        return url

    def whatsapp_link_url(self, wa_id: str) -> str:
        """Mint a one-time link for ``wa_id`` (single use, expires) and return its URL."""
        wa_id = _user_id(wa_id)
        token = new_secret()
        now = self.clock.now()
        self.store.add_grant(
            LinkGrant(
                kind=GrantKind.WHATSAPP_TOKEN,
                token_hash=hash_secret(token),
                channel=Channel.WHATSAPP,
                issued_at=now,
                expires_at=now + self.whatsapp_token_ttl,
                user_id=wa_id,
            )
        )
        return with_query(self.base_url + WHATSAPP_LINK_PATH, token=token)

    def link_url_for(self, msg: InboundMessage) -> str | None:
        """Where an unlinked Messenger/WhatsApp user goes to link; None on first-party channels."""
        if msg.channel is Channel.MESSENGER:
            return self.messenger_link_url(msg.user_id)
        if msg.channel is Channel.WHATSAPP:
            try:
                return self.whatsapp_link_url(msg.user_id)
            except ValidationError:
                return None
        return None

    def is_link_url(self, url: str) -> bool:
        """True for a URL this service made for Messenger linking (send it as an ``account_link`` button)."""
        return urlsplit(url).path == MESSENGER_LINK_PATH and url.startswith(
            self.base_url + MESSENGER_LINK_PATH
        )

    def settings_url(self) -> str:
        return self.base_url + SETTINGS_PATH

    # -- Messenger ----------------------------------------------------------------------------

    def check_redirect_uri(self, uri: str) -> str:
        """``uri`` if it is Messenger's account-linking callback (https, allowed host or subdomain, the
        callback path); else ValidationError."""
        if not uri or len(uri) > MAX_REDIRECT_URI or not uri.isascii() or not uri.isprintable() or " " in uri:
            raise ValidationError("redirect_uri is missing or malformed")
        if "\\" in uri:
            raise ValidationError("redirect_uri is malformed")
        parts = urlsplit(uri)
        try:
            port = parts.port
        except ValueError as exc:
            raise ValidationError("redirect_uri has a bad port") from exc
        host = (parts.hostname or "").rstrip(".")
        if parts.scheme != "https" or "@" in parts.netloc or port not in (None, 443) or not host:
            raise ValidationError("redirect_uri must be a plain https URL")
        if not any(host == h or host.endswith("." + h) for h in self.redirect_hosts):
            raise ValidationError("redirect_uri points to a host that is not allowed")
        if parts.path not in self.redirect_paths:
            raise ValidationError("redirect_uri is not Messenger's account-linking callback")
        return uri

    def check_linking_token(self, token: str) -> str:
        if not token or len(token) > MAX_LINKING_TOKEN or not token.isascii() or not token.isprintable():
            raise ValidationError("account_linking_token is missing or malformed")
        if any(c.isspace() for c in token):
            raise ValidationError("account_linking_token is malformed")
        return token

    def _sign_state(self, psid: str, expires: int | None = None) -> str:
        psid = _user_id(psid)
        if not _PSID_RE.fullmatch(psid):
            raise ValidationError("PSID has unexpected characters")
        exp = expires if expires is not None else int(self.clock.now().timestamp()) + self.state_ttl_s
        mac = hmac.new(self._state_key, f"messenger|{psid}|{exp}".encode(), hashlib.sha256).digest()[:16]
        return f"{psid}.{exp}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"

    def check_state(self, state: str | None) -> str:
        """The PSID a ``state`` was signed for; ValidationError if missing, malformed, forged or stale.

        Every link button we send carries a state, so a link without one did not come from our chat.
        """
        if not state:
            raise ValidationError("state is missing; tap the link button in Messenger again")
        pieces = state.split(".")
        if len(state) > 300 or not state.isascii() or len(pieces) != 3 or not _EXPIRY_RE.fullmatch(pieces[1]):
            raise ValidationError("state is malformed")
        psid, exp = pieces[0], int(pieces[1])
        if not _PSID_RE.fullmatch(psid):
            raise ValidationError("state is malformed")
        if not hmac.compare_digest(self._sign_state(psid, exp).encode("ascii"), state.encode("ascii")):
            raise ValidationError("state does not verify")
        if exp <= int(self.clock.now().timestamp()):
            raise ValidationError("state has expired; tap the link button in Messenger again")
        return psid

    def issue_authorization_code(
        self, customer_id: int, account_linking_token: str, *, psid: str | None = None
    ) -> str:
        """After the customer accepted: a one-time code for Messenger's redirect (hash stored only).

        The code is bound to the customer, the Messenger channel, the agreement version they saw, the
        ``account_linking_token`` (by hash) and, when known from ``state``, the PSID.
        """
        self.check_linking_token(account_linking_token)
        agreement = self.agreement(Channel.MESSENGER)
        code = new_secret()
        now = self.clock.now()
        self.store.add_grant(
            LinkGrant(
                kind=GrantKind.MESSENGER_CODE,
                token_hash=hash_secret(code),
                channel=Channel.MESSENGER,
                issued_at=now,
                expires_at=now + self.code_ttl,
                customer_id=customer_id,
                user_id=psid,
                context_hash=hash_secret(account_linking_token),
                agreement_id=agreement.id,
                agreement_version=agreement.version,
            )
        )
        log.info("messenger authorization code issued (psid bound: %s)", psid is not None)
        return code

    def complete_messenger(
        self, psid: str, authorization_code: str, at: datetime | None = None
    ) -> Binding | None:
        """The ``account_linking`` webhook said ``linked``: bind ``psid`` to the code's customer.

        Returns the new binding, or None when the code is unknown, expired, already used, or was
        issued for another PSID (the code is spent either way). Validity is judged on the service
        clock; ``at`` (default now) is recorded as the link time.
        """
        if not psid or len(psid) > MAX_USER_ID or not looks_like_secret(authorization_code):
            log.info("messenger link refused: malformed input")
            return None
        now = self.clock.now()
        grant = self.store.redeem_grant(GrantKind.MESSENGER_CODE, hash_secret(authorization_code), now)
        if grant is None or grant.customer_id is None or grant.agreement_id is None:
            log.info("messenger link refused: unknown, expired or reused authorization code")
            return None
        if grant.user_id is not None and grant.user_id != psid:
            log.warning("messenger link refused: code was issued for another PSID")
            return None
        binding = self.store.bind(
            channel=Channel.MESSENGER,
            user_id=psid,
            customer_id=grant.customer_id,
            agreement_id=grant.agreement_id,
            agreement_version=grant.agreement_version or "",
            method=ConsentMethod.MESSENGER_ACCOUNT_LINKING,
            given_at=grant.issued_at,
            at=at or now,
        )
        log.info("messenger user linked (consent %s)", binding.consent_id)
        return binding

    def complete_messenger_extensions(
        self, psid: str, customer_id: int, at: datetime | None = None
    ) -> Binding:
        """The logged-in customer accepted the consent page a Messenger webview opened: bind ``psid``.

        The caller has verified ``psid`` from a Messenger Extensions ``signed_request`` (signed by Meta
        with the app secret, recent, for our Page); the consent record says so
        (:attr:`ConsentMethod.MESSENGER_EXTENSIONS`) and is to the current agreement.
        """
        psid = _user_id(psid)
        if not _PSID_RE.fullmatch(psid):
            raise ValidationError("PSID has unexpected characters")
        agreement = self.agreement(Channel.MESSENGER)
        now = self.clock.now()
        binding = self.store.bind(
            channel=Channel.MESSENGER,
            user_id=psid,
            customer_id=customer_id,
            agreement_id=agreement.id,
            agreement_version=agreement.version,
            method=ConsentMethod.MESSENGER_EXTENSIONS,
            given_at=now,
            at=at or now,
        )
        log.info("messenger user linked from a webview (consent %s)", binding.consent_id)
        return binding

    # -- WhatsApp -----------------------------------------------------------------------------

    def whatsapp_pending(self, token: str) -> LinkGrant | None:
        """The grant behind a WhatsApp link if it can still be used (nothing changes)."""
        if not looks_like_secret(token):
            return None
        grant = self.store.grant(GrantKind.WHATSAPP_TOKEN, hash_secret(token))
        return grant if grant is not None and grant.usable(self.clock.now()) else None

    def complete_whatsapp(self, token: str, customer_id: int, at: datetime | None = None) -> Binding | None:
        """The logged-in customer accepted on the page a WhatsApp link opened: bind the wa_id.

        Returns the binding, or None when the token is unknown, expired or already used.
        """
        if not looks_like_secret(token):
            return None
        now = self.clock.now()
        grant = self.store.redeem_grant(GrantKind.WHATSAPP_TOKEN, hash_secret(token), now)
        if grant is None or not grant.user_id:
            log.info("whatsapp link refused: unknown, expired or reused token")
            return None
        agreement = self.agreement(Channel.WHATSAPP)
        binding = self.store.bind(
            channel=Channel.WHATSAPP,
            user_id=grant.user_id,
            customer_id=customer_id,
            agreement_id=agreement.id,
            agreement_version=agreement.version,
            method=ConsentMethod.WHATSAPP_LINK,
            given_at=now,
            at=at or now,
        )
        log.info("whatsapp user linked (consent %s)", binding.consent_id)
        return binding

    def decline_whatsapp(self, token: str) -> bool:
        """The customer declined: spend the token so the link cannot be used again."""
        if not looks_like_secret(token):
            return False
        return (
            self.store.redeem_grant(GrantKind.WHATSAPP_TOKEN, hash_secret(token), self.clock.now())
            is not None
        )

    # -- operators ----------------------------------------------------------------------------

    def link_operator(
        self, channel: Channel, user_id: str, customer_id: int, at: datetime | None = None
    ) -> Binding:
        """Record a linked, consented binding as if the customer had completed the flow (operators, tests)."""
        channel = Channel(channel)
        if channel not in LINKABLE_CHANNELS:
            raise ValidationError(f"only {', '.join(c.value for c in LINKABLE_CHANNELS)} users can be linked")
        agreement = self.agreement(channel)
        when = at or self.clock.now()
        return self.store.bind(
            channel=channel,
            user_id=_user_id(user_id),
            customer_id=customer_id,
            agreement_id=agreement.id,
            agreement_version=agreement.version,
            method=ConsentMethod.OPERATOR_CLI,
            given_at=when,
            at=when,
        )

    # -- withdrawing --------------------------------------------------------------------------

    def unlink(
        self, channel: Channel, user_id: str, how: WithdrawalMethod | str, at: datetime | None = None
    ) -> bool:
        """Withdraw consent and remove the binding at once; True if there was one."""
        method = WithdrawalMethod(how)
        removed = self.store.unbind(Channel(channel), user_id, method, at or self.clock.now())
        return self._unlinked(removed, method)

    def unlink_own(self, customer_id: int, consent_id: int, how: WithdrawalMethod | str) -> bool:
        """Withdraw one of ``customer_id``'s own bindings by its consent id (the bank's site).

        Only the binding made under that very consent is removed: if the platform user was linked
        again in the meantime (maybe by someone else), the new binding is left alone.
        """
        method = WithdrawalMethod(how)
        removed = self.store.unbind_consent(consent_id, customer_id, method, self.clock.now())
        return self._unlinked(removed, method)

    def _unlinked(self, removed: Binding | None, method: WithdrawalMethod) -> bool:
        if removed is None:
            return False
        log.info("%s user unlinked (consent %s, %s)", removed.channel.value, removed.consent_id, method.value)
        for listener in list(self.unlink_listeners):
            try:
                listener(removed, method)
            except Exception:
                log.exception("an unlink listener failed")
        return True

    def purge_expired(self) -> int:
        """Forget one-time secrets that expired more than a day ago."""
        return self.store.purge_grants(self.clock.now() - timedelta(days=1))

    # -- the chat intent ----------------------------------------------------------------------

    def handle_unlink(self, ctx: TurnContext) -> Reply:
        """Intent.UNLINK: withdraw consent from the chat, confirming in the customer's language."""
        lang = ctx.language
        msg = ctx.message
        if not msg.channel.is_third_party:
            button = LinkButton(text("linked_apps", lang), self.settings_url())
            return Reply(
                (FreeText(text("first_party", lang), origin="template:linking"),),
                buttons=(button,),
                language=lang,
            )
        if self.store.binding(msg.channel, msg.user_id) is None:
            return Reply((Say("not_linked"),), language=lang)
        sure = (
            ctx.classification.confidence >= self.confirm_below
            or normalize(msg.text).strip(" .!؟?،,") in _UNLINK_WORDS
        )
        if not sure:
            ctx.meta["unlink"] = "confirm"
            quick = (QuickReply(label("qr.unlink", lang), "intent:unlink"),)
            return Reply(
                (FreeText(text("unlink_confirm", lang), origin="template:linking"),), quick, language=lang
            )
        self.unlink(msg.channel, msg.user_id, WithdrawalMethod.CHAT)
        ctx.state.customer_id = None
        ctx.state.pending = None
        ctx.meta["unlink"] = "done"
        return Reply((FreeText(text("unlinked", lang), origin="template:linking"),), language=lang)


def _user_id(user_id: str) -> str:
    cleaned = (user_id or "").strip()
    if not cleaned or len(cleaned) > MAX_USER_ID:
        raise ValidationError(f"a platform user id must be 1 to {MAX_USER_ID} characters")
    return cleaned
