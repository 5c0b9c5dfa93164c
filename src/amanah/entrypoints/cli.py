"""The ``amanah`` command line: serve, migrate, seed, chat, inspect, evaluate, benchmark.

Every command builds what it needs through :mod:`amanah.bootstrap`; nothing is built at import.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from amanah.settings import Settings

app = typer.Typer(
    help="Amanah: the bank's own assistant for web chat, Messenger and WhatsApp.", no_args_is_help=True
)
customer_app = typer.Typer(help="Inspect customers (for operators and tests).", no_args_is_help=True)
bench_app = typer.Typer(
    help="Benchmarks: each prints its figures and a JSON summary as the last line.", no_args_is_help=True
)
eval_app = typer.Typer(help="Quality evaluations.", no_args_is_help=True)
app.add_typer(customer_app, name="customer")
app.add_typer(bench_app, name="bench")
app.add_typer(eval_app, name="eval")
audit_app = typer.Typer(
    help="The disclosure ledger: verify its hash chain, report what each platform received.",
    no_args_is_help=True,
)
app.add_typer(audit_app, name="audit")


def _settings(**overrides: Any) -> Settings:
    base = Settings()
    clean = {k: v for k, v in overrides.items() if v is not None}
    return base.model_copy(update=clean) if clean else base


def _logging(settings: Settings) -> None:
    logging.basicConfig(
        level=getattr(logging, settings.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )


def _fail(message: str, code: int = 2) -> None:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema (AMANAH_DATABASE_URL) to the latest migration."""
    from amanah.adapters.storage.migrate import migrate as run_migrations

    settings = _settings()
    run_migrations(settings.database_url)
    typer.echo(f"migrated {_redact_url(settings.database_url)}")


@app.command()
def seed(
    demo: Annotated[
        bool, typer.Option("--demo", help="Seed the demo bank (customers layla, omar, sara).")
    ] = False,
    reset: Annotated[bool, typer.Option(help="Delete and re-create the demo customers' data.")] = False,
    anchor: Annotated[
        str | None, typer.Option(help="Last day of the demo history, YYYY-MM-DD (default today).")
    ] = None,
) -> None:
    """Load data into the database. Today the only data set is the demo bank (see docs/demo.md)."""
    if not demo:
        _fail("nothing to seed: pass --demo")
    from amanah.adapters.clock import SystemClock
    from amanah.adapters.core.demo import seed_demo
    from amanah.adapters.storage.db import make_engine
    from amanah.adapters.storage.migrate import migrate as run_migrations

    settings = _settings()
    day = _parse_day(anchor) if anchor else SystemClock(settings.timezone).today()
    run_migrations(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        created = seed_demo(engine, day, reset=reset)
    finally:
        engine.dispose()
    typer.echo(
        "seeded the demo bank" if created else "the demo bank is already seeded (use --reset to re-create)"
    )


def _parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        _fail(f"not a date (YYYY-MM-DD): {text!r}")
        raise  # unreachable


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (AMANAH_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (AMANAH_PORT).")] = None,
    workers_in_process: Annotated[
        bool | None,
        typer.Option(
            "--worker/--no-worker",
            help="Run the channel worker inside the server (default: AMANAH_RUN_WORKER_IN_SERVER, true).",
        ),
    ] = None,
) -> None:
    """Serve the web chat, webhooks and the bank's pages."""
    import uvicorn

    from amanah.bootstrap import build
    from amanah.domain.errors import ConfigurationError
    from amanah.entrypoints.asgi import create_app

    settings = _settings(host=host, port=port, run_worker_in_server=workers_in_process)
    _logging(settings)
    try:
        container = build(settings)
    except ConfigurationError as exc:  # e.g. a broken agreement file: say what, no traceback
        _fail(f"cannot start: {exc}")
        raise
    _check_schema(container)
    typer.echo(
        f"Amanah serving on http://{settings.host}:{settings.port}/  (database {_redact_url(settings.database_url)})"
    )
    uvicorn.run(
        create_app(container), host=settings.host, port=settings.port, log_level="warning", access_log=False
    )


@app.command()
def demo(
    host: Annotated[str | None, typer.Option(help="Interface to bind (AMANAH_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (AMANAH_PORT).")] = None,
) -> None:
    """Migrate, seed the demo bank, and serve: everything a first look needs."""
    migrate()
    seed(demo=True, reset=False, anchor=None)
    serve(host=host, port=port, workers_in_process=None)


def _check_schema(container: Any) -> None:
    from sqlalchemy import inspect

    engine = container.engine
    if engine is not None and not inspect(engine).has_table("customers"):
        _fail("the database has no schema yet: run `amanah migrate` (and `amanah seed --demo`) first")


@customer_app.command("show")
def customer_show(
    username: str,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print a customer's accounts, cards, payees and last 20 transactions."""
    from amanah.bootstrap import build
    from amanah.domain.banking import TransactionQuery
    from amanah.domain.errors import UnknownCustomer

    container = build(_settings())
    _check_schema(container)
    core = container.core
    try:
        customer = core.customer_by_username(username.strip().lower())
    except UnknownCustomer:
        _fail(f"no customer named {username!r}", code=1)
        raise
    balances = core.balances(customer.id)
    txs = core.search_transactions(TransactionQuery(customer_id=customer.id, limit=20))
    data: dict[str, Any] = {
        "username": customer.username,
        "display_name": customer.display_name,
        "language": customer.language,
        "accounts": [
            {
                "id": b.account.id,
                "kind": b.account.kind.value,
                "name": b.account.name,
                "iban": b.account.iban,
                "currency": b.account.currency.code,
                "balance": str(b.booked.decimal),
                "available": str(b.available.decimal),
            }
            for b in balances
        ],
        "cards": [
            {"id": c.id, "last4": c.last4, "brand": c.brand, "status": c.status.value}
            for c in core.cards(customer.id)
        ],
        "payees": [
            {"name": p.name, "iban": p.iban, "bank": p.bank_name, "bic": p.bic}
            for p in core.payees(customer.id)
        ],
        "transactions": [
            {
                "id": t.id,
                "account_id": t.account_id,
                "booked_on": t.booked_on.isoformat(),
                "merchant": t.merchant,
                "category": t.category,
                "amount": str(t.amount.decimal),
                "currency": t.amount.currency.code,
                "status": t.status.value,
            }
            for t in txs
        ],
    }
    if as_json:
        typer.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]{customer.display_name}[/bold] ({customer.username}, {customer.language})")
    table = Table("account", "IBAN", "balance", "available")
    for a in data["accounts"]:
        table.add_row(
            a["name"], a["iban"], f"{a['balance']} {a['currency']}", f"{a['available']} {a['currency']}"
        )
    console.print(table)
    for c in data["cards"]:
        console.print(f"card {c['brand']} •••• {c['last4']}: {c['status']}")
    tx_table = Table("date", "merchant", "category", "amount", "status")
    for t in data["transactions"]:
        tx_table.add_row(
            t["booked_on"], t["merchant"], t["category"], f"{t['amount']} {t['currency']}", t["status"]
        )
    console.print(tx_table)


@app.command()
def chat(
    customer: Annotated[str, typer.Option("--customer", help="Username of the customer to chat as.")],
) -> None:
    """Chat in the terminal: one message per line on standard input, each reply printed (works piped)."""
    from amanah.app.commands import InboundMessage
    from amanah.app.render import ALLOW_ALL, render
    from amanah.bootstrap import build
    from amanah.domain.conversation import Channel
    from amanah.domain.errors import UnknownCustomer, ValidationError

    settings = _settings()
    container = build(settings)
    _check_schema(container)
    try:
        who = container.core.customer_by_username(customer.strip().lower())
    except UnknownCustomer:
        _fail(
            f"no customer named {customer!r}; try one from `amanah seed --demo` (layla, omar, sara)", code=1
        )
        raise
    interactive = sys.stdin.isatty()
    if interactive:
        typer.echo(f"Chatting as {who.display_name}. Type a message, Ctrl-D to quit.")
    while True:
        if interactive:
            typer.echo("you> ", nl=False)
        line = sys.stdin.readline()
        if not line:
            break
        text = line.strip()
        if not text:
            continue
        try:
            reply = container.assistant.handle(
                InboundMessage(Channel.CLI, f"cli:{who.username}", text, customer_id=who.id)
            )
        except ValidationError as exc:
            typer.echo(f"! {exc}")
            continue
        rendered = render(reply, ALLOW_ALL)
        typer.echo(rendered.text)
        if rendered.quick_replies:
            typer.echo("  [" + " | ".join(q.title for q in rendered.quick_replies) + "]")
        for b in rendered.buttons:
            typer.echo(f"  {b.title}: {b.url}")
        sys.stdout.flush()


@bench_app.command("guard")
def bench_guard(
    data: Annotated[Path, typer.Option("--data", help="finpii-faker style JSONL file (read in place).")],
    compare_presidio: Annotated[
        bool,
        typer.Option("--compare-presidio", help="Also run Presidio's pattern recognizers (bench extra)."),
    ] = False,
) -> None:
    """Recall/precision/false positives and msgs/s of the guard detectors (optionally vs Presidio)."""
    from amanah.bench.guard import guard_command

    guard_command(data, compare_presidio=compare_presidio)


_LINKABLE = ("messenger", "whatsapp")


def _linkable_channel(name: str) -> Any:
    from amanah.domain.conversation import Channel

    cleaned = name.strip().lower()
    if cleaned not in _LINKABLE:
        _fail(f"--channel must be one of: {', '.join(_LINKABLE)}")
    return Channel(cleaned)


@app.command()
def link(
    channel: Annotated[str, typer.Option("--channel", help="messenger or whatsapp.")],
    user_id: Annotated[str, typer.Option("--user-id", help="The platform's id of the person (PSID, wa_id).")],
    customer: Annotated[str, typer.Option("--customer", help="Username of the bank customer.")],
) -> None:
    """Record a linked, consented binding as if the customer had completed the linking flow."""
    from amanah.bootstrap import build
    from amanah.domain.errors import UnknownCustomer, ValidationError

    chosen = _linkable_channel(channel)
    container = build(_settings())
    _check_schema(container)
    assert container.linking is not None
    try:
        who = container.core.customer_by_username(customer.strip().lower())
    except UnknownCustomer:
        _fail(f"no customer named {customer!r}", code=1)
        raise
    try:
        binding = container.linking.link_operator(chosen, user_id, who.id)
    except ValidationError as exc:
        _fail(str(exc))
        raise
    typer.echo(
        f"linked {chosen.value} user {binding.user_id} to {who.username} "
        f"(consent {binding.consent_id}, agreement {binding.agreement_id} {binding.agreement_version})"
    )


@app.command()
def unlink(
    channel: Annotated[str, typer.Option("--channel", help="messenger or whatsapp.")],
    user_id: Annotated[str, typer.Option("--user-id", help="The platform's id of the person (PSID, wa_id).")],
) -> None:
    """Withdraw consent and remove a binding at once (the consent record is kept as proof)."""
    from amanah.bootstrap import build
    from amanah.domain.linking import WithdrawalMethod

    chosen = _linkable_channel(channel)
    container = build(_settings())
    _check_schema(container)
    assert container.linking is not None
    if not container.linking.unlink(chosen, user_id.strip(), WithdrawalMethod.OPERATOR_CLI):
        _fail(f"{chosen.value} user {user_id.strip()} is not linked", code=1)
    typer.echo(f"unlinked {chosen.value} user {user_id.strip()}")


@app.command()
def purge() -> None:
    """Delete what can no longer be used: expired secure links (they hold the withheld content),
    expired linking secrets, ended web sessions and old failed logins. Schedule it (cron, hourly)."""
    from amanah.bootstrap import build

    container = build(_settings())
    _check_schema(container)
    now = container.clock.now()
    links = container.guard.secure_links.purge(now)
    grants = container.linking.purge_expired() if container.linking is not None else 0
    sessions = container.web_sessions.purge() if container.web_sessions is not None else 0
    failures = container.login_throttle.purge() if container.login_throttle is not None else 0
    typer.echo(
        f"purged {links} expired secure link(s), {grants} expired link secret(s), "
        f"{sessions} ended web session(s) and {failures} old failed login(s)"
    )


@eval_app.command("nlu")
def eval_nlu(
    data_dir: Annotated[
        Path | None, typer.Option(help="Folder with banking77/ and arbanking77/ (optional).")
    ] = None,
) -> None:
    """Estimate intent accuracy: cross-validation on the project's examples, and external data if given."""
    from amanah.adapters.nlu.evaluate import evaluate

    figures = evaluate(data_dir)
    typer.echo(json.dumps(figures, ensure_ascii=False))


def _ledger_engine() -> Any:
    from sqlalchemy import inspect

    from amanah.adapters.storage.db import make_engine

    engine = make_engine(_settings().database_url)
    if not inspect(engine).has_table("disclosures"):
        engine.dispose()
        _fail("the database has no disclosure ledger yet: run `amanah migrate` first")
    return engine


@audit_app.command("verify")
def audit_verify(
    anchor: Annotated[
        str | None,
        typer.Option("--anchor", help="SEQ:HASH printed by an earlier verify, kept outside the database."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Check the ledger's hash chain; exit 1 naming each record changed, deleted, inserted or reordered."""
    from amanah.adapters.privacy.ledger import Anchor, SqlDisclosureLedger, verify_chain

    expected = None
    if anchor:
        try:
            expected = Anchor.parse(anchor)
        except ValueError as exc:
            _fail(str(exc))
    engine = _ledger_engine()
    try:
        records = SqlDisclosureLedger(engine).records()
    finally:
        engine.dispose()
    problems = verify_chain(records, expected)
    head = records[-1] if records else None
    if as_json:
        summary = {
            "ok": not problems,
            "records": len(records),
            "head": f"{head.seq}:{head.hash}" if head else None,
            "problems": [p.to_dict() for p in problems],
        }
        typer.echo(json.dumps(summary, ensure_ascii=False))
    else:
        for p in problems:
            typer.secho(f"{p.kind.value}: {p.message}", fg=typer.colors.RED)
        if problems:
            typer.secho(
                f"the disclosure ledger is NOT intact: {len(problems)} problem(s)", fg=typer.colors.RED
            )
        else:
            typer.echo(f"the disclosure ledger is intact: {len(records)} record(s)")
        if head is not None:
            typer.echo(
                f"head (keep it outside the database; pass it as --anchor later): {head.seq}:{head.hash}"
            )
    if problems:
        raise typer.Exit(1)


@audit_app.command("report")
def audit_report(
    customer: Annotated[str, typer.Option("--customer", help="Username of the bank customer.")],
    channel: Annotated[
        str | None, typer.Option("--channel", help="messenger or whatsapp (default: both).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """What each platform received about a customer: categories, treatment, how often, first and last time."""
    from amanah.adapters.privacy.ledger import SqlDisclosureLedger
    from amanah.adapters.storage.sql_core import SqlCoreBanking
    from amanah.domain.conversation import Channel
    from amanah.domain.errors import UnknownCustomer

    chosen = None
    if channel is not None:
        name = channel.strip().lower()
        if name not in ("messenger", "whatsapp"):
            _fail("--channel must be one of: messenger, whatsapp")
        chosen = Channel(name)
    engine = _ledger_engine()
    try:
        try:
            who = SqlCoreBanking(engine).customer_by_username(customer.strip().lower())
        except UnknownCustomer:
            _fail(f"no customer named {customer!r}", code=1)
            raise
        report = SqlDisclosureLedger(engine).report(who.id, chosen)
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps({"username": who.username, **report.to_dict()}, ensure_ascii=False, indent=2))
        return
    if not report.channels:
        where = chosen.value if chosen else "a third-party platform"
        typer.echo(f"no message about {who.username} was sent to {where}")
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for c in report.channels:
        console.print(
            f"[bold]{c.channel.value}[/bold]: {c.messages} message(s) about {who.username}, "
            f"{c.first_at:%Y-%m-%d %H:%M} to {c.last_at:%Y-%m-%d %H:%M} UTC ({', '.join(c.agreements)})"
        )
        table = Table("category", "treatment", "times", "first (UTC)", "last (UTC)")
        for u in c.uses:
            table.add_row(
                u.category.value,
                u.treatment.value,
                str(u.count),
                f"{u.first_at:%Y-%m-%d %H:%M}",
                f"{u.last_at:%Y-%m-%d %H:%M}",
            )
        console.print(table)


def _redact_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<database>"


def _register_channel_commands() -> None:
    from amanah.entrypoints.channels_cli import register

    register(app, bench_app)  # worker, fake-graph, simulate, outbox ..., bench messages

    from amanah.entrypoints.agents_cli import register as register_agents

    register_agents(app)  # agent send, agent release, agent tickets


_register_channel_commands()


def main() -> None:
    from amanah.domain.errors import ConfigurationError

    try:
        app()
    except ConfigurationError as exc:  # a broken setting or agreement: say what, never a traceback
        typer.secho(f"cannot start: {exc}", fg=typer.colors.RED, err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
