"""The assistant's sentence catalogue, in English and Arabic. Keys are stable; texts are the bank's.

Placeholders in braces are filled by the renderer; typed values are rendered under the channel's
treatment, so a sentence never decides on its own what a platform sees.
"""

from __future__ import annotations

CATALOGUE: dict[str, dict[str, str]] = {
    "greeting": {
        "en": "Hello {name}! I'm Amanah, your bank's assistant. How can I help?",
        "ar": "أهلاً {name}! أنا أمانة، مساعد البنك. كيف أقدر أساعدك؟",
    },
    "greeting_anon": {
        "en": "Hello! I'm Amanah, the bank's assistant. How can I help?",
        "ar": "أهلاً! أنا أمانة، مساعد البنك. كيف أقدر أساعدك؟",
    },
    "help": {
        "en": "I can show your balances and transactions, tell you what you spent, freeze or unfreeze "
        "your card, report it lost or stolen, answer questions about the bank, or put you through to a person.",
        "ar": "أستطيع عرض أرصدتك وعملياتك، وإخبارك بما صرفت، وتجميد بطاقتك أو إلغاء تجميدها، والإبلاغ عن "
        "فقدانها أو سرقتها، والإجابة عن أسئلتك عن البنك، أو تحويلك إلى موظف.",
    },
    "thanks": {"en": "You're welcome! Anything else?", "ar": "العفو! هل تحتاج شيئاً آخر؟"},
    "goodbye": {"en": "Goodbye, and thank you for banking with us.", "ar": "مع السلامة، وشكراً لتعاملك معنا."},
    "balance_intro": {"en": "Here are your balances:", "ar": "هذه أرصدتك:"},
    "balance_intro_one": {"en": "Here is the balance of your {account}:", "ar": "هذا رصيد {account}:"},
    "no_such_account": {
        "en": "I couldn't find a {kind} account in your name. Here is what you have:",
        "ar": "لم أجد لديك حساب {kind}. هذه حساباتك:",
    },
    "tx_intro": {"en": "Your last {count}:", "ar": "آخر {count}:"},
    "tx_intro_filtered": {"en": "Transactions {filter}:", "ar": "العمليات {filter}:"},
    "tx_none": {"en": "I found no transactions {filter}.", "ar": "لم أجد عمليات {filter}."},
    "spending_total": {"en": "You spent {spending}.", "ar": "صرفت {spending}."},
    "spending_line": {"en": "• {spending}", "ar": "• {spending}"},
    "spending_top": {"en": "Biggest categories:", "ar": "أكثر الفئات صرفاً:"},
    "card_choose": {"en": "Which card do you mean?", "ar": "أي بطاقة تقصد؟"},
    "card_none": {"en": "You have no card I can act on.", "ar": "لا توجد لديك بطاقة أستطيع التعامل معها."},
    "card_confirm_freeze": {
        "en": "Freeze your card {card}? You can unfreeze it any time.",
        "ar": "هل تريد تجميد بطاقتك {card}؟ يمكنك إلغاء التجميد في أي وقت.",
    },
    "card_confirm_unfreeze": {
        "en": "Unfreeze your card {card} so it works again?",
        "ar": "هل تريد إلغاء تجميد بطاقتك {card} لتعمل من جديد؟",
    },
    "card_confirm_lost": {
        "en": "Report your card {card} as lost? It will be blocked for good and we will send you a "
        "replacement.",
        "ar": "هل تريد الإبلاغ عن فقدان بطاقتك {card}؟ سيتم إيقافها نهائياً وسنرسل لك بطاقة بديلة.",
    },
    "card_confirm_stolen": {
        "en": "Report your card {card} as stolen? It will be blocked for good and we will send you a "
        "replacement.",
        "ar": "هل تريد الإبلاغ عن سرقة بطاقتك {card}؟ سيتم إيقافها نهائياً وسنرسل لك بطاقة بديلة.",
    },
    "card_done_freeze": {
        "en": "Done. Your card {card} is now {status}.",
        "ar": "تم. بطاقتك {card} الآن {status}.",
    },
    "card_done_unfreeze": {
        "en": "Done. Your card {card} is {status} again.",
        "ar": "تم. بطاقتك {card} أصبحت {status} من جديد.",
    },
    "card_done_lost": {
        "en": "Done. Your card {card} is blocked ({status}). A replacement is on its way.",
        "ar": "تم. بطاقتك {card} موقوفة ({status}). البطاقة البديلة في الطريق.",
    },
    "card_already": {"en": "Your card {card} is already {status}.", "ar": "بطاقتك {card} بالفعل {status}."},
    "card_blocked_final": {
        "en": "Your card {card} was reported {status} and is blocked for good; it cannot be changed here.",
        "ar": "بطاقتك {card} مُبلغ عنها ({status}) وموقوفة نهائياً، ولا يمكن تغييرها من هنا.",
    },
    "cancelled": {"en": "OK, I haven't changed anything.", "ar": "حسناً، لم أغيّر شيئاً."},
    "confirm_again": {"en": "Please answer yes or no.", "ar": "من فضلك أجب بنعم أو لا."},
    "nothing_pending": {
        "en": "There's nothing waiting for a yes or no. What would you like to do?",
        "ar": "لا يوجد شيء بانتظار التأكيد. ماذا تريد أن تفعل؟",
    },
    "handoff": {
        "en": "I've asked a colleague to join. A person from our team will reply here as soon as possible.",
        "ar": "طلبت من أحد الزملاء الانضمام. سيرد عليك موظف من فريقنا هنا في أقرب وقت.",
    },
    "agent_waiting": {
        "en": 'A person from our team will reply here soon. Tap "Back to assistant" if you\'d rather '
        "continue with me.",
        "ar": 'سيرد عليك موظف من فريقنا هنا قريباً. اضغط "العودة إلى المساعد" إذا أردت المتابعة معي.',
    },
    "resumed": {"en": "I'm back. How can I help?", "ar": "عدت إليك. كيف أساعدك؟"},
    "clarify": {
        "en": "I'm not sure I understood. Did you mean one of these?",
        "ar": "لست متأكداً أنني فهمت. هل تقصد أحد هذه؟",
    },
    "out_of_scope": {
        "en": "I can only help with your banking. Here are some things I can do:",
        "ar": "أستطيع المساعدة في أمورك البنكية فقط. هذه بعض الأشياء التي أقدر عليها:",
    },
    "empty": {"en": "I didn't get a message. What can I do for you?", "ar": "لم تصلني رسالة. كيف أساعدك؟"},
    "need_login": {
        "en": "To see your accounts, please link your bank account on the bank's own website first.",
        "ar": "لعرض حساباتك، يرجى ربط حسابك البنكي أولاً من موقع البنك الرسمي.",
    },
    "credential_warning": {
        "en": "Please never share your PIN, CVV, one-time passcode or password in a chat, not even with "
        "us. I have not kept what you sent. If someone asked you for it, call the bank.",
        "ar": "لا تشارك أبداً الرقم السري أو رمز CVV أو رمز التحقق أو كلمة المرور في أي محادثة، ولا حتى "
        "معنا. لم أحتفظ بما أرسلته. إذا طلبها منك أحد فاتصل بالبنك.",
    },
    "card_number_warning": {
        "en": "Please don't type card numbers or account numbers in a chat. I have not kept it.",
        "ar": "من فضلك لا تكتب أرقام البطاقات أو الحسابات في المحادثة. لم أحتفظ بالرقم.",
    },
    "card_number_offer_freeze": {
        "en": "That looks like your card {card}. Do you want me to freeze it to be safe?",
        "ar": "يبدو أن هذا رقم بطاقتك {card}. هل تريد أن أجمّدها احتياطاً؟",
    },
    "not_linked": {
        "en": "This chat is not linked to a bank account.",
        "ar": "هذه المحادثة غير مرتبطة بحساب بنكي.",
    },
    "privacy_report_unavailable": {
        "en": "This is the bank's own chat: nothing here is shared with a third-party platform.",
        "ar": "هذه محادثة البنك الخاصة: لا يُشارك شيء هنا مع أي منصة خارجية.",
    },
    "error": {
        "en": "Sorry, something went wrong on our side. Please try again in a moment.",
        "ar": "عذراً، حدث خطأ من جهتنا. حاول مرة أخرى بعد قليل.",
    },
    "withheld": {"en": "🔒 on the secure page", "ar": "🔒 في الصفحة الآمنة"},
    "withheld_summary": {
        "en": "I have your {topic} ready. For your privacy I don't show it in this chat: open it on the bank's "
        "secure page.",
        "ar": "جهّزت لك {topic}. حفاظاً على خصوصيتك لا أعرضها في هذه المحادثة: افتحها في صفحة البنك الآمنة.",
    },
    "withheld_denied": {
        "en": "I can't share your {topic} in this chat. You can see them in the bank's app or on its website.",
        "ar": "لا أستطيع مشاركة {topic} في هذه المحادثة. يمكنك الاطلاع عليها في تطبيق البنك أو موقعه.",
    },
    "withheld_note": {
        "en": "For your privacy I don't show this here. Open it on the bank's secure page:",
        "ar": "حفاظاً على خصوصيتك لا أعرض هذا هنا. افتحه في صفحة البنك الآمنة:",
    },
}

LABELS: dict[str, dict[str, str]] = {
    "account.current": {"en": "current account", "ar": "الحساب الجاري"},
    "account.savings": {"en": "savings account", "ar": "حساب التوفير"},
    "kind.current": {"en": "current", "ar": "جاري"},
    "kind.savings": {"en": "savings", "ar": "توفير"},
    "status.active": {"en": "active", "ar": "فعّالة"},
    "status.frozen": {"en": "frozen", "ar": "مجمّدة"},
    "status.lost": {"en": "lost", "ar": "مفقودة"},
    "status.stolen": {"en": "stolen", "ar": "مسروقة"},
    "tx.pending": {"en": "pending", "ar": "معلّقة"},
    "available": {"en": "available", "ar": "متاح"},
    "booked": {"en": "booked", "ar": "مسجّل"},
    "at": {"en": "at {x}", "ar": "لدى {x}"},
    "on": {"en": "on {x}", "ar": "على {x}"},
    "from_to": {"en": "from {a} to {b}", "ar": "من {a} إلى {b}"},
    "in_total": {"en": "in total", "ar": "إجمالاً"},
    "qr.balance": {"en": "My balance", "ar": "رصيدي"},
    "qr.transactions": {"en": "Last transactions", "ar": "آخر العمليات"},
    "qr.spending": {"en": "My spending", "ar": "مصروفاتي"},
    "qr.card_freeze": {"en": "Freeze my card", "ar": "تجميد بطاقتي"},
    "qr.card_unfreeze": {"en": "Unfreeze my card", "ar": "إلغاء تجميد بطاقتي"},
    "qr.card_lost": {"en": "Lost or stolen card", "ar": "بطاقة مفقودة أو مسروقة"},
    "qr.faq": {"en": "Ask a question", "ar": "سؤال عام"},
    "qr.human_agent": {"en": "Talk to a person", "ar": "التحدث مع موظف"},
    "qr.help": {"en": "What can you do?", "ar": "ماذا تستطيع أن تفعل؟"},
    "topic.spending.summary": {"en": "spending summary", "ar": "ملخص مصروفاتك"},
    "topic.transaction.detail": {"en": "transaction details", "ar": "تفاصيل عملياتك"},
    "topic.transfer.detail": {"en": "transfer details", "ar": "تفاصيل تحويلاتك"},
    "topic.account.balance": {"en": "account balances", "ar": "أرصدة حساباتك"},
    "topic.account.identifier": {"en": "account details", "ar": "تفاصيل حساباتك"},
    "topic.customer.contact": {"en": "contact details", "ar": "بيانات التواصل الخاصة بك"},
    "topic.card.number": {"en": "card details", "ar": "تفاصيل بطاقتك"},
    "topic.card.status": {"en": "card details", "ar": "تفاصيل بطاقتك"},
    "topic.customer.name": {"en": "details", "ar": "التفاصيل"},
    "qr.card": {"en": "Card {n}", "ar": "البطاقة {n}"},
    "qr.yes": {"en": "Yes", "ar": "نعم"},
    "qr.no": {"en": "No", "ar": "لا"},
    "qr.resume": {"en": "Back to assistant", "ar": "العودة إلى المساعد"},
    "qr.privacy_report": {"en": "What is shared?", "ar": "ما الذي تمت مشاركته؟"},
    "qr.unlink": {"en": "Unlink", "ar": "إلغاء الربط"},
    "btn.link": {"en": "Link my account", "ar": "ربط حسابي"},
    "btn.secure": {"en": "Open secure page", "ar": "فتح الصفحة الآمنة"},
}


def say(key: str, language: str) -> str:
    entry = CATALOGUE[key]
    return entry.get(language) or entry["en"]


def label(key: str, language: str) -> str:
    entry = LABELS[key]
    return entry.get(language) or entry["en"]
