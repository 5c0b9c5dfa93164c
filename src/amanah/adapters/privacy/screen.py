"""The inbound screen: what a customer typed is checked by the detectors before anything is kept."""

from __future__ import annotations

from amanah.adapters.privacy.detectors import FindingKind, detect, redact
from amanah.app.ports import Screening
from amanah.domain.text import to_ascii_digits

_IDENTIFIERS = frozenset({FindingKind.CARD_NUMBER, FindingKind.IBAN, FindingKind.ACCOUNT_NUMBER})


class DetectorScreen:
    """Implements :class:`~amanah.app.ports.InboundScreen` with the shared detectors."""

    def screen(self, text: str) -> Screening:
        findings = detect(text)
        if not findings:
            return Screening(redacted=text, credential=False)
        last4s = tuple(
            "".join(ch for ch in to_ascii_digits(f.value) if ch.isdigit())[-4:]
            for f in findings
            if f.kind is FindingKind.CARD_NUMBER
        )
        return Screening(
            redacted=redact(text, findings),
            credential=any(f.kind is FindingKind.CREDENTIAL for f in findings),
            card_last4s=last4s,
            identifiers=any(f.kind in _IDENTIFIERS for f in findings),
        )
