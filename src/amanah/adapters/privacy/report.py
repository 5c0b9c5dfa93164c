"""The customer's privacy report: "what does Messenger know about me?", answered from the ledger.

:func:`privacy_report_handler` is the :data:`~amanah.app.assistant.IntentHandler` for
``Intent.PRIVACY_REPORT``. On a third-party channel it never puts the report in the chat: it answers
with a secure link (bound to the customer) to the report page on the bank's site. On the bank's own
channels it links to the report page directly (the customer is already logged in there). A chat that
is not linked to a customer gets the usual "link your account first".

The report is computed from the ledger when the page is opened, so it is always current. The
bilingual labels the pages use live here too.
"""

from __future__ import annotations

from amanah.adapters.privacy.guard import AgreementGuard
from amanah.adapters.privacy.secure_links import LinkPurpose
from amanah.app.assistant import IntentHandler, TurnContext
from amanah.app.i18n import lang_of
from amanah.domain.categories import DataCategory, Treatment
from amanah.domain.conversation import Channel
from amanah.domain.replies import FreeText, LinkButton, Reply, Say
from amanah.domain.text import normalize

__all__ = [
    "CATEGORY_LABELS",
    "CHANNEL_LABELS",
    "TREATMENT_LABELS",
    "mentioned_channel",
    "privacy_report_handler",
]

CHANNEL_LABELS: dict[Channel, dict[str, str]] = {
    Channel.MESSENGER: {"en": "Facebook Messenger", "ar": "فيسبوك ماسنجر"},
    Channel.WHATSAPP: {"en": "WhatsApp", "ar": "واتساب"},
    Channel.WEBCHAT: {"en": "the bank's web chat", "ar": "محادثة البنك على موقعه"},
    Channel.CLI: {"en": "the terminal", "ar": "الطرفية"},
}

CATEGORY_LABELS: dict[DataCategory, dict[str, str]] = {
    DataCategory.PUBLIC: {"en": "General information", "ar": "معلومات عامة"},
    DataCategory.CUSTOMER_NAME: {"en": "Your name", "ar": "اسمك"},
    DataCategory.CUSTOMER_CONTACT: {"en": "Your contact details", "ar": "بيانات الاتصال بك"},
    DataCategory.ACCOUNT_IDENTIFIER: {"en": "Account numbers and IBANs", "ar": "أرقام الحسابات والآيبان"},
    DataCategory.ACCOUNT_BALANCE: {"en": "Balances", "ar": "الأرصدة"},
    DataCategory.CARD_NUMBER: {"en": "Card numbers", "ar": "أرقام البطاقات"},
    DataCategory.CARD_STATUS: {"en": "Card status (active, frozen…)", "ar": "حالة البطاقة (فعّالة، مجمّدة…)"},
    DataCategory.TRANSACTION_DETAIL: {"en": "Transactions", "ar": "العمليات"},
    DataCategory.SPENDING_SUMMARY: {"en": "Spending summaries", "ar": "ملخصات الإنفاق"},
    DataCategory.TRANSFER_DETAIL: {"en": "Transfers", "ar": "التحويلات"},
    DataCategory.CREDENTIAL: {
        "en": "Passwords, PINs and codes",
        "ar": "كلمات المرور والأرقام السرية والرموز",
    },
}

TREATMENT_LABELS: dict[Treatment, dict[str, str]] = {
    Treatment.ALLOW: {"en": "shown", "ar": "ظاهرة"},
    Treatment.MASK: {"en": "shown partly (e.g. last 4 digits)", "ar": "ظاهرة جزئياً (مثل آخر ٤ أرقام)"},
    Treatment.SECURE_LINK: {"en": "withheld: sent as a secure link", "ar": "محجوبة: أُرسل رابط آمن بدلاً منها"},
    Treatment.DENY: {"en": "withheld", "ar": "محجوبة"},
}

_TEXT = {
    "third_party": {
        "en": "I can show you what {platform} has received from the bank about you. For your privacy "
        "the report is on the bank's secure page:",
        "ar": "أستطيع أن أريك ما تلقّاه {platform} من البنك عنك. حفاظاً على خصوصيتك، التقرير في صفحة البنك الآمنة:",
    },
    "first_party": {
        "en": "Your privacy report shows what each messaging platform has received from the bank about you:",
        "ar": "يعرض تقرير الخصوصية ما تلقّته كل منصة مراسلة من البنك عنك:",
    },
    "button": {"en": "See the report", "ar": "عرض التقرير"},
}

_MENTIONS: tuple[tuple[Channel, tuple[str, ...]], ...] = (
    (Channel.MESSENGER, ("messenger", "facebook", "ماسنجر", "مسنجر", "فيسبوك", "فيس بوك")),
    (Channel.WHATSAPP, ("whatsapp", "whats app", "واتساب", "واتس اب", "الواتس")),
)


def mentioned_channel(text: str) -> Channel | None:
    """The platform a message names ("what does WhatsApp know…"), if exactly one is named."""
    t = f" {normalize(text)} "
    found = [ch for ch, words in _MENTIONS if any(w in t for w in (normalize(x) for x in words))]
    return found[0] if len(found) == 1 else None


def privacy_report_handler(guard: AgreementGuard) -> IntentHandler:
    """The ``Intent.PRIVACY_REPORT`` handler, minting its links through ``guard``."""

    def handle(ctx: TurnContext) -> Reply:
        lang = lang_of(ctx.language)
        customer_id = ctx.state.customer_id
        if customer_id is None:
            return Reply((Say("need_login"),), language=lang)
        here = ctx.message.channel
        channel = mentioned_channel(ctx.message.text) or (here if here.is_third_party else None)
        ctx.meta["report_channel"] = channel.value if channel else "all"
        if here.is_third_party:
            platform = CHANNEL_LABELS[channel or here][lang]
            url = guard.mint(
                customer_id,
                LinkPurpose.PRIVACY_REPORT,
                {"channel": channel.value if channel else None, "language": lang},
                lang,
            )
            text = _TEXT["third_party"][lang].format(platform=platform)
            button = LinkButton(_TEXT["button"][lang], url)
        else:
            query = f"?channel={channel.value}" if channel else ""
            text = _TEXT["first_party"][lang]
            button = LinkButton(_TEXT["button"][lang], f"{guard.base_url}/privacy{query}")
        return Reply((FreeText(text, origin="template:privacy_report"),), buttons=(button,), language=lang)

    return handle
