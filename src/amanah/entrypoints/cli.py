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

app = typer.Typer(help="Amanah: the bank's own assistant for web chat, Messenger and WhatsApp.", no_args_is_help=True)
customer_app = typer.Typer(help="Inspect customers (for operators and tests).", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks: each prints its figures and a JSON summary as the last line.", no_args_is_help=True)
eval_app = typer.Typer(help="Quality evaluations.", no_args_is_help=True)
app.add_typer(customer_app, name="customer")
app.add_typer(bench_app, name="bench")
app.add_typer(eval_app, name="eval")


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
    demo: Annotated[bool, typer.Option("--demo", help="Seed the demo bank (customers layla, omar, sara).")] = False,
    reset: Annotated[bool, typer.Option(help="Delete and re-create the demo customers' data.")] = False,
    anchor: Annotated[str | None, typer.Option(help="Last day of the demo history, YYYY-MM-DD (default today).")] = None,
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
    typer.echo("seeded the demo bank" if created else "the demo bank is already seeded (use --reset to re-create)")


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
        bool, typer.Option("--worker/--no-worker", help="Run the channel worker inside the server.")
    ] = True,
) -> None:
    """Serve the web chat, webhooks and the bank's pages."""
    import uvicorn

    from amanah.bootstrap import build
    from amanah.entrypoints.asgi import create_app

    settings = _settings(host=host, port=port, run_worker_in_server=workers_in_process)
    _logging(settings)
    container = build(settings)
    _check_schema(container)
    typer.echo(f"Amanah serving on http://{settings.host}:{settings.port}/  (database {_redact_url(settings.database_url)})")
    uvicorn.run(create_app(container), host=settings.host, port=settings.port, log_level="warning", access_log=False)


@app.command()
def demo(
    host: Annotated[str | None, typer.Option(help="Interface to bind (AMANAH_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (AMANAH_PORT).")] = None,
) -> None:
    """Migrate, seed the demo bank, and serve: everything a first look needs."""
    migrate()
    seed(demo=True, reset=False, anchor=None)
    serve(host=host, port=port, workers_in_process=True)


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
        "cards": [{"id": c.id, "last4": c.last4, "brand": c.brand, "status": c.status.value} for c in core.cards(customer.id)],
        "payees": [{"name": p.name, "iban": p.iban, "bank": p.bank_name, "bic": p.bic} for p in core.payees(customer.id)],
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
        table.add_row(a["name"], a["iban"], f"{a['balance']} {a['currency']}", f"{a['available']} {a['currency']}")
    console.print(table)
    for c in data["cards"]:
        console.print(f"card {c['brand']} •••• {c['last4']}: {c['status']}")
    tx_table = Table("date", "merchant", "category", "amount", "status")
    for t in data["transactions"]:
        tx_table.add_row(t["booked_on"], t["merchant"], t["category"], f"{t['amount']} {t['currency']}", t["status"])
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
        _fail(f"no customer named {customer!r}; try one from `amanah seed --demo` (layla, omar, sara)", code=1)
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
            reply = container.assistant.handle(InboundMessage(Channel.CLI, f"cli:{who.username}", text, customer_id=who.id))
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


@eval_app.command("nlu")
def eval_nlu(
    data_dir: Annotated[Path | None, typer.Option(help="Folder with banking77/ and arbanking77/ (optional).")] = None,
) -> None:
    """Estimate intent accuracy: cross-validation on the project's examples, and external data if given."""
    from amanah.adapters.nlu.evaluate import evaluate

    figures = evaluate(data_dir)
    typer.echo(json.dumps(figures, ensure_ascii=False))


def _redact_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<database>"


def main() -> None:
    app()


if __name__ == "__main__":
    main()
