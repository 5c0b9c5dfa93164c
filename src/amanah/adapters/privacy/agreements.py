"""Load and validate the agreement files (``agreements/*.toml``). A broken one stops start-up."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import Any

from amanah.domain.agreements import Agreement, ConsentText, Rule, validate
from amanah.domain.categories import DataCategory, Purpose, Treatment
from amanah.domain.conversation import Channel
from amanah.domain.errors import ConfigurationError

PACKAGED = Path(__file__).resolve().parents[2] / "agreements"
REQUIRED = (Channel.MESSENGER, Channel.WHATSAPP, Channel.WEBCHAT)


def _parse(path: Path) -> tuple[Agreement | None, list[str]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return None, [f"{path.name}: cannot read: {exc}"]
    problems: list[str] = []
    for table in ("agreement", "categories", "consent"):
        if not isinstance(data.get(table, {}), dict):
            return None, [f"{path.name}: [{table}] must be a table"]
    head: dict[str, Any] = data.get("agreement", {})
    try:
        channel = Channel(str(head.get("channel", "")))
    except ValueError:
        return None, [
            f"{path.name}: [agreement] channel must be one of {', '.join(c.value for c in Channel)}"
        ]
    if path.stem != channel.value:
        problems.append(
            f"{path.name}: file name must be '{channel.value}.toml' for channel '{channel.value}'"
        )
    try:
        effective = date.fromisoformat(str(head.get("effective", "")))
    except ValueError:
        problems.append(f"{path.name}: [agreement] effective must be a date (YYYY-MM-DD)")
        effective = date.min
    rules: dict[DataCategory, Rule] = {}
    for name, spec in dict(data.get("categories", {})).items():
        if not isinstance(spec, dict):
            problems.append(f"{path.name}: category '{name}' must be a table with treatment and purposes")
            continue
        if not isinstance(spec.get("purposes", []), list):
            problems.append(f"{path.name}: category '{name}': purposes must be a list")
            continue
        try:
            category = DataCategory(name)
        except ValueError:
            problems.append(f"{path.name}: unknown category '{name}'")
            continue
        try:
            treatment = Treatment(str(spec.get("treatment", "")))
        except ValueError:
            problems.append(
                f"{path.name}: category '{name}': treatment must be allow, mask, secure_link or deny"
            )
            continue
        try:
            purposes = frozenset(Purpose(str(p)) for p in spec.get("purposes", []))
        except ValueError:
            problems.append(f"{path.name}: category '{name}': unknown purpose in {spec.get('purposes')}")
            continue
        rules[category] = Rule(treatment, purposes)
    consent: dict[str, ConsentText] = {}
    for lang, spec in dict(data.get("consent", {})).items():
        if not isinstance(spec, dict) or not all(
            isinstance(spec.get(k, []), list) for k in ("will_see", "will_not_see")
        ):
            problems.append(f"{path.name}: [consent.{lang}] must be a table with will_see/will_not_see lists")
            continue
        consent[lang] = ConsentText(
            title=str(spec.get("title", "")),
            will_see=tuple(str(x) for x in spec.get("will_see", [])),
            will_not_see=tuple(str(x) for x in spec.get("will_not_see", [])),
            note=str(spec.get("note", "")),
        )
    agreement = Agreement(
        id=str(head.get("id", "")),
        version=str(head.get("version", "")),
        channel=channel,
        counterparty=str(head.get("counterparty", "")),
        effective=effective,
        rules=MappingProxyType(rules),
        consent=MappingProxyType(consent),
        source=path.name,
    )
    return agreement, problems + validate(agreement)


def load_agreements(directory: Path | None = None) -> Mapping[Channel, Agreement]:
    """Every agreement in ``directory`` (default: the packaged ones), validated.

    Raises :class:`ConfigurationError` naming every problem when any file is broken or contradictory,
    or when a channel Amanah serves has no agreement.
    """
    folder = directory or PACKAGED
    if not folder.is_dir():
        raise ConfigurationError(f"agreements folder not found: {folder}")
    found: dict[Channel, Agreement] = {}
    problems: list[str] = []
    for path in sorted(folder.glob("*.toml")):
        agreement, errors = _parse(path)
        problems.extend(errors)
        if agreement is not None:
            if agreement.channel in found:
                problems.append(f"{path.name}: a second agreement for channel '{agreement.channel.value}'")
            found[agreement.channel] = agreement
    for channel in REQUIRED:
        if channel not in found:
            problems.append(f"no agreement for channel '{channel.value}' in {folder}")
    if problems:
        raise ConfigurationError("invalid data-sharing agreements:\n  - " + "\n  - ".join(problems))
    return MappingProxyType(found)
