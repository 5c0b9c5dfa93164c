"""Agreement files: the shipped ones load; broken or contradictory ones stop start-up with a clear error."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from amanah.adapters.privacy.agreements import PACKAGED, load_agreements
from amanah.bootstrap import build
from amanah.domain.categories import DataCategory, Treatment
from amanah.domain.conversation import Channel
from amanah.domain.errors import ConfigurationError
from amanah.settings import Settings


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A writable copy of the shipped agreements."""
    target = tmp_path / "agreements"
    shutil.copytree(PACKAGED, target)
    return target


def edit(path: Path, pattern: str, replacement: str) -> None:
    text = path.read_text(encoding="utf-8")
    changed, n = re.subn(pattern, replacement, text, count=1, flags=re.MULTILINE)
    assert n == 1, f"pattern {pattern!r} not found in {path.name}"
    path.write_text(changed, encoding="utf-8")


def refusal(folder: Path) -> str:
    with pytest.raises(ConfigurationError) as info:
        load_agreements(folder)
    return str(info.value)


def test_the_shipped_agreements_load_with_the_documented_defaults() -> None:
    """Messenger/WhatsApp: no balance, identifier, transaction, spending or transfer in clear; cards last 4."""
    agreements = load_agreements()
    assert set(agreements) == {Channel.MESSENGER, Channel.WHATSAPP, Channel.WEBCHAT}
    for channel in (Channel.MESSENGER, Channel.WHATSAPP):
        a = agreements[channel]
        for category in (
            DataCategory.ACCOUNT_BALANCE,
            DataCategory.ACCOUNT_IDENTIFIER,
            DataCategory.TRANSACTION_DETAIL,
            DataCategory.SPENDING_SUMMARY,
            DataCategory.TRANSFER_DETAIL,
        ):
            assert a.treatment(category) is Treatment.SECURE_LINK
        assert a.treatment(DataCategory.CARD_NUMBER) is Treatment.MASK
        assert a.treatment(DataCategory.CREDENTIAL) is Treatment.DENY
        assert {"en", "ar"} <= set(a.consent)
    web = agreements[Channel.WEBCHAT]
    assert all(web.treatment(c).reveals for c in DataCategory if c is not DataCategory.CREDENTIAL), (
        "the bank's own channel shows everything to the logged-in customer"
    )


def test_advertising_on_a_financial_category_is_refused(folder: Path) -> None:
    """Financial data may never serve advertising: the file and the category are named."""
    edit(
        folder / "messenger.toml",
        r'(\[categories\."card\.status"\]\ntreatment = "allow"\npurposes = )\[.*\]',
        r'\1["service", "advertising"]',
    )
    message = refusal(folder)
    assert 'messenger.toml: [categories."card.status"]: financial data may never serve advertising' in message


def test_a_missing_category_is_refused(folder: Path) -> None:
    """Every category must be stated: silence is not a treatment."""
    edit(
        folder / "whatsapp.toml",
        r'\[categories\."transfer\.detail"\]\ntreatment = "secure_link"\npurposes = \[\]\n',
        "",
    )
    assert "whatsapp.toml: no rule for categories transfer.detail" in refusal(folder)


def test_mask_on_a_balance_is_refused(folder: Path) -> None:
    """A balance cannot be partly shown: 'mask' is only for identifiers, card numbers and names."""
    edit(
        folder / "messenger.toml",
        r'(\[categories\."account\.balance"\]\ntreatment = )"secure_link"\npurposes = \[\]',
        r'\1"mask"' + '\npurposes = ["service"]',
    )
    assert "[categories.\"account.balance\"]: 'mask' is only defined for" in refusal(folder)


def test_missing_consent_text_is_refused(folder: Path) -> None:
    """A third-party agreement needs consent text in English and Arabic."""
    path = folder / "whatsapp.toml"
    text = path.read_text(encoding="utf-8")
    start = text.index("[consent.ar]")
    end = text.index("[categories.")
    path.write_text(text[:start] + text[end:], encoding="utf-8")
    assert "whatsapp.toml: consent text in 'ar' is missing" in refusal(folder)


def test_credentials_must_be_denied(folder: Path) -> None:
    """No agreement may let a credential through, not even behind a secure link."""
    edit(folder / "webchat.toml", r'(\[categories\."credential"\]\ntreatment = )"deny"', r'\1"secure_link"')
    assert "credentials must be 'deny' on every channel" in refusal(folder)


def test_every_problem_is_reported_at_once(folder: Path) -> None:
    """Two broken files give one error listing both problems."""
    edit(folder / "webchat.toml", r'(\[categories\."credential"\]\ntreatment = )"deny"', r'\1"allow"')
    edit(
        folder / "messenger.toml",
        r'(\[categories\."account\.balance"\]\ntreatment = )"secure_link"',
        r'\1"shown"',
    )
    message = refusal(folder)
    assert "webchat.toml" in message and "messenger.toml" in message
    assert message.startswith("invalid data-sharing agreements:")


def test_a_missing_agreement_file_is_refused(folder: Path) -> None:
    """A channel Amanah serves must have an agreement."""
    (folder / "whatsapp.toml").unlink()
    assert "no agreement for channel 'whatsapp'" in refusal(folder)


def test_unreadable_toml_is_refused(folder: Path) -> None:
    """A syntax error names the file."""
    (folder / "messenger.toml").write_text("[agreement\nid = ", encoding="utf-8")
    assert "messenger.toml: cannot read" in refusal(folder)


def test_build_stops_on_a_broken_agreement_with_a_clear_message(folder: Path, tmp_path: Path) -> None:
    """Start-up (build) raises ConfigurationError naming the file and the rule, before serving anything."""
    edit(
        folder / "messenger.toml",
        r'(\[categories\."account\.balance"\]\ntreatment = )"secure_link"',
        r'\1"mask"',
    )
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}", agreements_dir=folder)
    with pytest.raises(ConfigurationError, match=r"messenger\.toml: \[categories\.\"account\.balance\"\]"):
        build(settings)


@pytest.mark.parametrize(
    "broken",
    [
        'agreement = "x"\n',
        '[agreement]\nid="a"\nversion="1"\nchannel="webchat"\neffective="2026-01-01"\n[categories]\npublic = "allow"\n',
        '[agreement]\nid="a"\nversion="1"\nchannel="webchat"\neffective="2026-01-01"\n'
        '[categories.public]\ntreatment="allow"\npurposes="service"\n',
    ],
)
def test_wrongly_shaped_files_are_reported_not_crashed_on(tmp_path: Path, broken: str) -> None:
    """A file whose tables have the wrong shape gives a ConfigurationError naming it, not a traceback."""
    for f in PACKAGED.glob("*.toml"):
        (tmp_path / f.name).write_text(f.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "webchat.toml").write_text(broken, encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"webchat\.toml"):
        load_agreements(tmp_path)
