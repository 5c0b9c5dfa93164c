"""``amanah agent ...``: a bank agent replies in a Messenger/WhatsApp thread, or gives it back to the bot.

The same use case as ``POST /admin/agent/messages`` (``adapters/channels/handover.py``): the text goes
through the egress guard (refused, not redacted, when it holds data the platform may not receive),
into the durable outbox marked with the agent's id, and into the disclosure ledger. The running
server's (or ``amanah worker``'s) outbox sender sends it.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

agent_app = typer.Typer(
    help="Bank agents in Messenger/WhatsApp threads: send as a person, release to the bot, tickets.",
    no_args_is_help=True,
)


def _fail(message: str, code: int = 2) -> None:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _desk() -> Any:
    from amanah.adapters.channels.handover import make_desk
    from amanah.entrypoints.channels_cli import _container, _settings

    return make_desk(_container(_settings()))


ChannelOpt = Annotated[str, typer.Option("--channel", help="messenger or whatsapp.")]
UserOpt = Annotated[str, typer.Option("--user-id", help="The person's PSID (Messenger) or wa_id (WhatsApp).")]
AgentOpt = Annotated[
    str, typer.Option("--agent", help="Your agent id (recorded with the message, never sent).")
]


@agent_app.command("send")
def agent_send(
    channel: ChannelOpt,
    user_id: UserOpt,
    text: Annotated[str, typer.Option("--text", help="What to send, as written (no card or account data).")],
    agent: AgentOpt,
    request_id: Annotated[
        str | None, typer.Option("--request-id", help="Repeat a request safely: queued only once.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Reply in a thread as a human agent (Messenger: HUMAN_AGENT tag after 24 h, up to 7 days)."""
    from amanah.adapters.channels.handover import MessageBlocked, NoConversation
    from amanah.domain.errors import ValidationError

    desk = _desk()
    try:
        receipt = desk.send(channel, user_id, text, agent, request_id=request_id)
    except MessageBlocked as exc:
        _fail(str(exc), code=1)
        raise
    except NoConversation as exc:
        _fail(str(exc), code=1)
        raise
    except ValidationError as exc:
        _fail(str(exc))
        raise
    if as_json:
        typer.echo(json.dumps(receipt.to_dict()))
        return
    if receipt.status == "duplicate":
        typer.echo(f"already queued: {receipt.key}")
        return
    how = receipt.messaging_type or "-"
    if receipt.tag:
        how += f" + {receipt.tag}"
    typer.echo(f"{receipt.status}: {receipt.key} ({receipt.calls} call(s), {how}, {receipt.reason})")
    if receipt.status == "held":
        typer.echo(
            "the messaging window does not allow it: it is held until the customer writes again "
            "(see `amanah outbox notes`)"
        )
    if receipt.took_control:
        typer.echo("take_thread_control queued first: the thread leaves the other app")
    typer.echo(f"ticket {receipt.ticket}: the bot stays silent in this thread until `amanah agent release`")


@agent_app.command("release")
def agent_release(channel: ChannelOpt, user_id: UserOpt, agent: AgentOpt) -> None:
    """Give the thread back to the bot (Messenger: take_thread_control if another app holds it)."""
    from amanah.adapters.channels.handover import NoConversation
    from amanah.domain.errors import ValidationError

    desk = _desk()
    try:
        released = desk.release(channel, user_id, agent)
    except NoConversation as exc:
        _fail(str(exc), code=1)
        raise
    except ValidationError as exc:
        _fail(str(exc))
        raise
    closed = ", ".join(released.tickets) or "none open"
    took = "; take_thread_control queued" if released.took_control else ""
    typer.echo(f"released to the bot (tickets resolved: {closed}){took}")


@agent_app.command("tickets")
def agent_tickets(
    resolved: Annotated[bool, typer.Option("--resolved", help="Include resolved tickets.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Handover tickets: threads handed to people (open ones unless --resolved)."""
    tickets = _desk().tickets(open_only=not resolved, limit=limit)
    if as_json:
        typer.echo(json.dumps(tickets, default=str))
        return
    if not tickets:
        typer.echo("no open tickets" if not resolved else "no tickets")
    for t in tickets:
        state = f"resolved {t['resolved_at']}" if t["resolved_at"] else "open"
        typer.echo(f"{t['ticket']} {t['created_at']} {t['channel']} {t['user_id']} ({t['reason']}, {state})")


def register(app: typer.Typer) -> None:
    """Add ``amanah agent ...`` to the ``amanah`` CLI."""
    app.add_typer(agent_app, name="agent")
