"""CLI commands of the Messenger/WhatsApp pipeline: worker, fake-graph, simulate, outbox, bench messages.

Registered on the main ``amanah`` app by :func:`register` (see ``cli.py``). Everything heavy is
imported inside the commands: ``amanah --help`` stays fast.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer

from amanah.settings import Settings

outbox_app = typer.Typer(
    help="The outbox of Messenger/WhatsApp calls: status, failures, retries, agent notes.",
    no_args_is_help=True,
)

_CHANNELS = ("messenger", "whatsapp")


def _settings() -> Settings:
    return Settings()


def _fail(message: str, code: int = 2) -> None:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _logging(settings: Settings) -> None:
    logging.basicConfig(
        level=getattr(logging, settings.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )


def _channel(name: str) -> Any:
    from amanah.domain.conversation import Channel

    cleaned = name.strip().lower()
    if cleaned not in _CHANNELS:
        _fail(f"--channel must be one of: {', '.join(_CHANNELS)}")
    return Channel(cleaned)


def _container(settings: Settings) -> Any:
    from sqlalchemy import inspect

    from amanah.bootstrap import build

    container = build(settings)
    if container.engine is not None and not inspect(container.engine).has_table("channel_inbox"):
        _fail("the database has no channel tables yet: run `amanah migrate` first")
    return container


def worker(
    processes: Annotated[
        int, typer.Option("--processes", "-p", min=1, max=64, help="Worker processes to run.")
    ] = 1,
    senders: Annotated[
        int,
        typer.Option(
            "--senders",
            min=0,
            max=16,
            help="Run the outbox sender in this many processes of its own (0: each worker also sends).",
        ),
    ] = 0,
    role: Annotated[
        str,
        typer.Option("--role", help="What this process runs: both, inbox or sender (set by --senders)."),
    ] = "both",
) -> None:
    """Run channel workers (inbox -> replies -> outbox -> Graph) beside `amanah serve --no-worker`.

    Several workers, on one or many machines, can share one PostgreSQL database: conversations and
    outbox rows are leased, so no event is handled twice and each conversation stays in order. With
    `--senders M` the outbox is sent by M processes of their own, so that answering and sending each
    get a core (one Python process uses one core at a time).
    """
    if role not in ("both", "inbox", "sender"):
        _fail(f"--role must be both, inbox or sender, not {role!r}")
    settings = _settings()
    _logging(settings)
    if processes > 1 or senders > 0:
        inbox_role = "inbox" if senders > 0 else "both"
        _run_children([inbox_role] * processes + ["sender"] * senders)
        return
    from amanah.adapters.channels.worker import make_worker

    container = _container(settings)
    runner = make_worker(container, inbox=role != "sender", send=role != "inbox")
    stopping = False

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            typer.echo("worker: stopping (finishing in-flight calls)", err=True)
            runner.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    runner.start()
    typer.echo(f"worker {os.getpid()} ({role}) running (database {_redact(settings.database_url)})", err=True)
    runner.wait()


def _run_children(roles: list[str]) -> None:
    command = [sys.executable, "-m", "amanah.entrypoints.cli", "worker", "--processes", "1", "--role"]
    children = [subprocess.Popen([*command, role]) for role in roles]  # noqa: S603 - our own module

    def forward(signum: int, _frame: Any) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [child.wait() for child in children]
    if any(codes):
        raise typer.Exit(1)


def fake_graph(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 9100,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    record: Annotated[
        Path | None, typer.Option("--record", help="Append every call to this JSON Lines file.")
    ] = None,
    echo_webhook: Annotated[
        str | None,
        typer.Option(
            "--echo-webhook",
            help="Post signed message echoes here, like Meta (e.g. http://127.0.0.1:8000/webhooks/messenger). "
            "Signed with AMANAH_MESSENGER_APP_SECRET.",
        ),
    ] = None,
    check_token: Annotated[
        bool,
        typer.Option("--check-token/--any-token", help="Refuse tokens other than the configured ones (190)."),
    ] = False,
) -> None:
    """A local fake of the Messenger and WhatsApp Send APIs (see GET /_fake/calls)."""
    from amanah.adapters.channels.fake_graph import EchoTarget, serve_fake_graph

    settings = _settings()
    echo = None
    if echo_webhook:
        secret = settings.messenger_app_secret.get_secret_value()
        if not secret:
            _fail("--echo-webhook needs AMANAH_MESSENGER_APP_SECRET to sign the echoes")
        echo = EchoTarget(echo_webhook, secret, app_id=settings.messenger_app_id or "555000111")
    token = settings.messenger_page_access_token.get_secret_value() if check_token else None
    typer.echo(f"fake Graph API on http://{host}:{port}/v23.0  (calls: GET http://{host}:{port}/_fake/calls)")
    serve_fake_graph(host, port, record, access_token=token or None, echo=echo)


def messenger_event(
    user_id: str, text: str, *, payload: str | None = None, page_id: str = "1000000000000001"
) -> bytes:
    """A Messenger webhook body with one message (or quick-reply tap) from ``user_id``, now."""
    now = int(time.time() * 1000)
    message: dict[str, Any] = {"mid": f"m_sim_{uuid.uuid4().hex}", "text": text}
    if payload:
        message["quick_reply"] = {"payload": payload}
    item = {"sender": {"id": user_id}, "recipient": {"id": page_id}, "timestamp": now, "message": message}
    doc = {"object": "page", "entry": [{"id": page_id, "time": now, "messaging": [item]}]}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def whatsapp_event(
    user_id: str, text: str, *, payload: str | None = None, phone_number_id: str = "400000000000004"
) -> bytes:
    """A WhatsApp webhook body with one text message (or reply-button tap) from ``user_id``, now."""
    now = int(time.time())
    message: dict[str, Any] = {"from": user_id, "id": f"wamid.sim{uuid.uuid4().hex}", "timestamp": str(now)}
    if payload:
        message.update(
            type="interactive",
            interactive={"type": "button_reply", "button_reply": {"id": payload, "title": text}},
        )
    else:
        message.update(type="text", text={"body": text})
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": phone_number_id},
        "contacts": [{"profile": {"name": "Simulated"}, "wa_id": user_id}],
        "messages": [message],
    }
    doc = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "300000000000003", "changes": [{"field": "messages", "value": value}]}],
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _fake_base(graph_url: str) -> str:
    parts = urlsplit(graph_url)
    return f"{parts.scheme}://{parts.netloc}"


def simulate(
    text: Annotated[str, typer.Argument(help="What the user types.")],
    channel: Annotated[str, typer.Option("--channel", help="messenger or whatsapp.")] = "messenger",
    user_id: Annotated[
        str, typer.Option("--user-id", help="The sender's PSID / wa_id.")
    ] = "2000000000000002",
    payload: Annotated[str | None, typer.Option(help="Send a quick-reply tap with this payload.")] = None,
    url: Annotated[
        str | None, typer.Option(help="The server's base URL (default http://AMANAH_HOST:AMANAH_PORT).")
    ] = None,
    wait: Annotated[
        float, typer.Option(help="Seconds to wait for the reply at the fake Graph API (0: don't).")
    ] = 10.0,
) -> None:
    """Sign and POST a webhook event to a local server, like Meta would; print the bot's reply."""
    import httpx

    from amanah.adapters.channels.meta import hub_signature

    settings = _settings()
    chosen = _channel(channel)
    secret = (
        settings.messenger_app_secret if chosen.value == "messenger" else settings.whatsapp_app_secret
    ).get_secret_value()
    if not secret:
        _fail(f"set AMANAH_{chosen.value.upper()}_APP_SECRET (the same value as the server's)")
    if chosen.value == "messenger":
        body = messenger_event(user_id, text, payload=payload)
        graph = settings.messenger_graph_url
    else:
        body = whatsapp_event(
            user_id,
            text,
            payload=payload,
            phone_number_id=settings.whatsapp_phone_number_id or "400000000000004",
        )
        graph = settings.whatsapp_graph_url
    target = (url or settings.base_url).rstrip("/") + f"/webhooks/{chosen.value}"
    fake = _fake_base(graph)
    since = 0
    if wait > 0:
        try:
            since = max(
                (c["seq"] for c in httpx.get(f"{fake}/_fake/calls", timeout=5.0).json()["calls"]), default=0
            )
        except (httpx.HTTPError, ValueError, KeyError):
            wait = 0  # no fake Graph API to read the reply from
    try:
        response = httpx.post(
            target,
            content=body,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": hub_signature(body, secret)},
            timeout=10.0,
        )
    except httpx.HTTPError as exc:
        _fail(f"could not reach {target}: {exc}", code=1)
        raise
    typer.echo(f"POST {target} -> {response.status_code} {response.text}")
    if response.status_code != 200:
        raise typer.Exit(1)
    deadline = time.monotonic() + wait
    while wait > 0 and time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            calls = httpx.get(f"{fake}/_fake/calls", params={"since": since}, timeout=5.0).json()["calls"]
        except (httpx.HTTPError, ValueError, KeyError):
            break
        replies = [c for c in calls if c.get("recipient") == user_id and isinstance(c.get("body"), dict)]
        texts = [t for t in (_call_text(c["body"]) for c in replies) if t]
        if texts:
            for t in texts:
                typer.echo(f"bot> {t}")
            return
    if wait > 0:
        typer.echo("no reply at the fake Graph API yet (is a worker running? see `amanah outbox status`)")


def _call_text(body: dict[str, Any]) -> str | None:
    """The visible text of a Send API body, with its buttons and quick replies, for the terminal."""
    message = body.get("message")
    if isinstance(message, dict):
        text = message.get("text")
        payload = (message.get("attachment") or {}).get("payload") or {}
        if text is None and isinstance(payload, dict):
            text = payload.get("text")
            for b in payload.get("buttons", []):
                text = f"{text}\n  [{b.get('title', b.get('type'))}] {b.get('url', '')}".rstrip()
        quick = message.get("quick_replies") or []
        if quick:
            text = f"{text}\n  (" + " | ".join(q.get("title", "") for q in quick) + ")"
        return str(text) if text is not None else None
    if isinstance(body.get("text"), dict):
        return str(body["text"].get("body"))
    interactive = body.get("interactive")
    if isinstance(interactive, dict):
        return str((interactive.get("body") or {}).get("text"))
    return None


@outbox_app.command("status")
def outbox_status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Counts of inbox events and outbox calls by status."""
    container = _container(_settings())
    runtime = container.channels
    doc = {
        "inbox": runtime.inbox.counts(),
        "outbox": runtime.outbox.counts(),
        "open_agent_notes": len(runtime.outbox.notes(1000)),
    }
    if as_json:
        typer.echo(json.dumps(doc))
        return
    typer.echo("inbox:  " + (", ".join(f"{k} {v}" for k, v in sorted(doc["inbox"].items())) or "empty"))
    for channel, counts in sorted(doc["outbox"].items()):
        typer.echo(f"outbox {channel}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if not doc["outbox"]:
        typer.echo("outbox: empty")
    typer.echo(f"open agent notes: {doc['open_agent_notes']}")


@outbox_app.command("failed")
def outbox_failed(
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    held: Annotated[
        bool, typer.Option("--held/--no-held", help="Also list calls held outside the window.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Calls that failed permanently (or ran out of retries), and held ones: what operators must see."""
    container = _container(_settings())
    rows = container.channels.outbox.rows(["failed", "held"] if held else ["failed"], limit=limit)
    if as_json:
        typer.echo(json.dumps(rows, default=str))
        return
    if not rows:
        typer.echo("no failed or held calls")
        return
    for r in rows:
        typer.echo(
            f"#{r['id']} {r['channel']} {r['status']} key={r['key']} attempts={r['attempts']} "
            f"action={r['error_action']} code={r['error_code']}/{r['error_subcode']} "
            f"fbtrace_id={r['trace_id']} {r['error_message'] or ''}".rstrip()
        )


@outbox_app.command("retry")
def outbox_retry(
    ids: Annotated[
        list[int] | None, typer.Argument(help="Outbox row ids (see `amanah outbox failed`).")
    ] = None,
    all_failed: Annotated[bool, typer.Option("--all", help="Retry every failed call.")] = False,
) -> None:
    """Put failed calls back in the queue (e.g. after fixing an expired access token)."""
    if not ids and not all_failed:
        _fail("give row ids, or --all")
    container = _container(_settings())
    n = container.channels.outbox.retry(None if all_failed else list(ids or []), container.clock.now())
    typer.echo(f"queued {n} call(s) again")


@outbox_app.command("purge")
def outbox_purge(
    days: Annotated[
        float, typer.Option(min=2, help="Keep this many days (at least 2: Meta retries for 36 h).")
    ] = 7,
) -> None:
    """Forget processed webhook events and finished calls older than --days (dedup keys stay that long)."""
    from datetime import timedelta

    container = _container(_settings())
    before = container.clock.now() - timedelta(days=days)
    inbox = container.channels.inbox.purge(before)
    outbox = container.channels.outbox.purge(before)
    typer.echo(f"purged {inbox} inbox event(s) and {outbox} outbox call(s) older than {days:g} days")


@outbox_app.command("notes")
def outbox_notes(limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50) -> None:
    """Open agent notes: replies held outside the messaging window, conversations handed to people."""
    container = _container(_settings())
    notes = container.channels.outbox.notes(limit)
    if not notes:
        typer.echo("no open agent notes")
    for n in notes:
        ticket = f" ticket {n['ticket']}" if n.get("ticket") else ""
        typer.echo(
            f"#{n['id']} {n['created_at']} {n['channel']} {n['user_id']} ({n['reason']}{ticket}): {n['text']}"
        )


def bench_messages(
    rate: Annotated[float, typer.Option(help="Inbound messages per second to offer.")] = 300.0,
    duration: Annotated[float, typer.Option(help="Seconds of load.")] = 20.0,
    users: Annotated[int, typer.Option(help="Distinct Messenger users (conversations).")] = 200,
    database_url: Annotated[
        str | None,
        typer.Option(
            help="PostgreSQL server URL: the bench creates and drops its own database there. Default: SQLite."
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=-1,
            help="`amanah worker` processes beside the server (0: the worker runs in the server; "
            "-1: no worker at all, to measure the webhook acks alone).",
        ),
    ] = 0,
    senders: Annotated[
        int,
        typer.Option(
            min=0,
            help="With --workers N: run the outbox sender in this many processes of its own "
            "(`amanah worker --senders M`).",
        ),
    ] = 0,
    echoes: Annotated[
        bool, typer.Option("--echoes/--no-echoes", help="Let the fake Graph API post message echoes back.")
    ] = False,
    batch: Annotated[
        int, typer.Option(help="Events per webhook request (Meta batches; 1 is the worst case).")
    ] = 1,
    drain: Annotated[float, typer.Option(help="Seconds to wait for the last replies after the load.")] = 60.0,
    out: Annotated[Path | None, typer.Option(help="Also write the JSON summary to this file.")] = None,
) -> None:
    """Drive signed webhook events at a real server + workers + fake Graph API; print throughput and latency."""
    from amanah.bench.messages import BenchConfig, run_bench

    config = BenchConfig(
        rate=rate,
        duration=duration,
        users=users,
        database_url=database_url,
        workers=workers,
        senders=senders,
        echoes=echoes,
        batch=batch,
        drain=drain,
    )
    summary = run_bench(config)
    if out is not None:
        out.write_text(json.dumps(summary) + "\n", encoding="utf-8")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<database>"


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this module's commands to the ``amanah`` CLI."""
    app.command("worker")(worker)
    app.command("fake-graph")(fake_graph)
    app.command("simulate")(simulate)
    app.add_typer(outbox_app, name="outbox")
    bench_app.command("messages")(bench_messages)
