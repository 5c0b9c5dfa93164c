"""End-to-end benchmark of the Messenger pipeline: webhook acks, replies, latencies.

``amanah bench messages`` builds a fresh database (a SQLite file, or a new database on the given
PostgreSQL server, dropped afterwards), seeds the demo bank and links half of the simulated users to
demo customers, then starts, as separate processes on loopback:

* the fake Graph API (``amanah fake-graph --record FILE``), which timestamps every call it receives;
* the real server (``amanah serve``, uvicorn), with the channel worker inside it (``--workers 0``) or
  beside it as ``amanah worker --processes N``.

An open-loop async httpx load generator POSTs signed Messenger webhook events at ``--rate`` for
``--duration`` seconds (bounded: ``rate x duration`` events, at most 512 requests in flight), then
waits up to ``--drain`` seconds for the replies. Figures:

* acknowledged msgs/s: events whose request got 200, divided by the load's wall time;
* ack latency p50/p99: request sent -> 200 received (at the load generator);
* replies/s: first calls of each reply (``metadata`` ending ``#0``; typing indicators and later
  parts are not counted) divided by the time from the first to the last one;
* reply latency p50/p99: inbound request sent -> the fake Graph API received the reply (the k-th
  reply to a user answers the k-th acknowledged message of that user: per-conversation order);
* missing / duplicate replies (must both be 0 once drained).

The sender's pacing (per-thread and per-Page token buckets) is turned off for the run (``PACING_OFF``
in the server's and workers' environment; the report says so): 200 users at 300 msgs/s write 1.5
messages a second each, which the per-thread bucket (1 a second) would hold back, and the figures are
meant to measure the pipeline, not the buckets.

Everything runs on the same machine: the generator, server, workers and fake compete for its cores.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

GOAL_ACKS_PER_S = 1000.0
GOAL_REPLIES_PER_S = 500.0
GOAL_REPLY_P99_MS = 250.0
GOAL_REPLY_P99_AT_RATE = 300.0
MAX_IN_FLIGHT = 512
CONNECTIONS = 64
SECRET = "bench-app-secret"  # noqa: S105 - a throwaway secret for a loopback benchmark
TOKEN = "bench-page-token"  # noqa: S105
PAGE_ID = "1000000000000001"
PACING_OFF = {  # the outbox sender's token buckets, off for the run (see the module docstring)
    "AMANAH_OUTBOX_THREAD_RATE_PER_S": "0",
    "AMANAH_OUTBOX_MESSENGER_RATE_PER_S": "0",
    "AMANAH_OUTBOX_WHATSAPP_RATE_PER_S": "0",
}
CUSTOMERS = ("layla", "omar", "sara")
TEXTS = (
    "hi",
    "what is my balance",
    "what are your opening hours?",
    "show my last 5 transactions",
    "how much did I spend on groceries last month",
    "how do I report a lost card",
    "كم رصيدي",
    "ما هي ساعات العمل",
    "thanks",
    "what can you do",
)


@dataclass(frozen=True)
class BenchConfig:
    rate: float = 300.0
    duration: float = 20.0
    users: int = 200
    database_url: str | None = None  # a PostgreSQL server URL; None = SQLite in a temp dir
    workers: int = 0
    senders: int = 0  # with workers > 0: sender processes of their own (amanah worker --senders)
    echoes: bool = False
    batch: int = 1
    drain: float = 60.0
    progress: bool = True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return round(ordered[index], 2)


@contextmanager
def _database(config: BenchConfig, tmp: Path) -> Iterator[str]:
    """A fresh database URL for the run; a PostgreSQL database is created and dropped."""
    if not config.database_url or config.database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp / 'bench.db'}"
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from amanah.adapters.storage.db import normalize_url

    admin_url = normalize_url(config.database_url)
    name = f"amanah_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        try:
            yield url
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def _prepare(url: str, users: list[str]) -> int:
    """Migrate, seed the demo bank, link every other user to a demo customer. Returns linked count."""
    from amanah.adapters.clock import SystemClock
    from amanah.adapters.core.demo import seed_demo
    from amanah.adapters.storage.db import make_engine
    from amanah.adapters.storage.migrate import migrate
    from amanah.bootstrap import build
    from amanah.domain.conversation import Channel
    from amanah.settings import Settings

    migrate(url)
    engine = make_engine(url)
    try:
        seed_demo(engine, SystemClock("UTC").today())
    finally:
        engine.dispose()
    container = build(Settings(database_url=url))
    linked = 0
    try:
        assert container.linking is not None
        ids = {u: container.core.customer_by_username(u).id for u in CUSTOMERS}
        for i, user in enumerate(users):
            if i % 2 == 0:
                container.linking.link_operator(
                    Channel.MESSENGER, user, ids[CUSTOMERS[i // 2 % len(CUSTOMERS)]]
                )
                linked += 1
    finally:
        if container.engine is not None:
            container.engine.dispose()
    return linked


def _env(url: str, server_port: int, graph_port: int, workers: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMANAH_")}
    env.update(
        AMANAH_DATABASE_URL=url,
        AMANAH_HOST="127.0.0.1",
        AMANAH_PORT=str(server_port),
        AMANAH_MESSENGER_APP_SECRET=SECRET,
        AMANAH_MESSENGER_VERIFY_TOKEN="bench-verify",  # noqa: S106 - loopback benchmark
        AMANAH_MESSENGER_PAGE_ACCESS_TOKEN=TOKEN,
        AMANAH_MESSENGER_GRAPH_URL=f"http://127.0.0.1:{graph_port}/v23.0",
        AMANAH_RUN_WORKER_IN_SERVER="false" if workers != 0 else "true",
        AMANAH_LOG_LEVEL="WARNING",
        AMANAH_DEMO_MODE="false",
        AMANAH_SESSION_SECRET=secrets.token_urlsafe(48),
    )
    env.update(PACING_OFF)
    return env


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    return subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "amanah.entrypoints.cli", *args],
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux /proc; empty elsewhere)."""
    out = [pid]
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            children = (task / "children").read_text().split()
            for child in children:
                out.extend(_tree(int(child)))
    except OSError:
        pass
    return out


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its descendants; 0 when unknown."""
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for p in set(_tree(pid)):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
        except (OSError, IndexError, ValueError):
            continue
    return total


def _wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up within {timeout:.0f} s")


def event_body(user: str, text: str, mid: str, now_ms: int, count: int = 1) -> bytes:
    """A Messenger webhook body with ``count`` text messages from ``user``."""
    items = [
        {
            "sender": {"id": user},
            "recipient": {"id": PAGE_ID},
            "timestamp": now_ms,
            "message": {"mid": f"{mid}.{n}" if count > 1 else mid, "text": text},
        }
        for n in range(count)
    ]
    doc = {"object": "page", "entry": [{"id": PAGE_ID, "time": now_ms, "messaging": items}]}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class RawHttpPool:
    """A minimal keep-alive HTTP/1.1 client for the load generator (loopback, POST, Content-Length).

    httpx costs the generator 3-5 ms of CPU per request on this machine, more than the server spends
    acknowledging one, so the generator itself would be what is measured. This pool writes a prepared
    request on one of ``size`` persistent connections and reads the status line, the headers and a
    ``Content-Length`` body. It is a benchmark tool, not a general client.
    """

    def __init__(self, url: str, size: int) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = parts.path or "/"
        self.size = size
        self._idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
        self._opened = 0

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._idle.empty() and self._opened < self.size:
            self._opened += 1
            try:
                return await asyncio.open_connection(self.host, self.port)
            except OSError:
                self._opened -= 1
                raise
        return await self._idle.get()

    async def post(self, body: bytes, headers: dict[str, str]) -> int:
        """POST ``body``; returns the status (raises OSError / ValueError when the connection fails)."""
        head = [
            f"POST {self.path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            f"Content-Length: {len(body)}",
        ]
        head += [f"{k}: {v}" for k, v in headers.items()]
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        reader, writer = await self._connection()
        try:
            writer.write(request)
            status_line = await reader.readuntil(b"\r\n")
            status = int(status_line.split(b" ", 2)[1])
            length = 0
            close = False
            while True:
                line = await reader.readuntil(b"\r\n")
                if line == b"\r\n":
                    break
                name, _, value = line.partition(b":")
                lowered = name.strip().lower()
                if lowered == b"content-length":
                    length = int(value.strip())
                elif lowered == b"connection" and value.strip().lower() == b"close":
                    close = True
            if length:
                await reader.readexactly(length)
        except BaseException:
            writer.close()
            self._opened -= 1
            raise
        if close:
            writer.close()
            self._opened -= 1
        else:
            self._idle.put_nowait((reader, writer))
        return status

    async def close(self) -> None:
        while not self._idle.empty():
            _reader, writer = self._idle.get_nowait()
            writer.close()


@dataclass
class LoadResult:
    sent: int = 0
    acked: int = 0
    errors: int = 0
    wall_s: float = 0.0
    ack_latencies_ms: list[float] | None = None
    sends: dict[str, list[float]] | None = None  # user -> wall times of acked events, in send order


async def _load(config: BenchConfig, url: str, users: list[str], progress: Any) -> LoadResult:
    total_requests = max(1, int(config.rate * config.duration / config.batch))
    interval = config.batch / config.rate
    result = LoadResult(ack_latencies_ms=[], sends=defaultdict(list))
    assert result.ack_latencies_ms is not None and result.sends is not None
    latencies, sends = result.ack_latencies_ms, result.sends
    in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
    # Reserve each user's slot in send order, fill in the ack (or drop it on error) later.
    slots: dict[str, list[tuple[float, bool] | None]] = defaultdict(list)
    key = SECRET.encode()
    run = uuid.uuid4().hex[:8]
    task_id = progress.add_task("webhooks", total=total_requests) if progress is not None else None
    pool = RawHttpPool(url, CONNECTIONS)

    async def one(i: int) -> None:
        user = users[i % len(users)]
        text = TEXTS[(i // len(users) + i) % len(TEXTS)]
        now = time.time()
        body = event_body(user, text, f"m_bench_{run}_{i}", int(now * 1000), config.batch)
        signature = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
        slot = len(slots[user])
        slots[user].append(None)
        started = time.perf_counter()
        ok = False
        try:
            headers = {"Content-Type": "application/json", "X-Hub-Signature-256": signature}
            ok = await asyncio.wait_for(pool.post(body, headers), 30.0) == 200
        except (TimeoutError, OSError, ValueError, asyncio.IncompleteReadError):
            ok = False
        finally:
            in_flight.release()
        latencies.append((time.perf_counter() - started) * 1000)
        slots[user][slot] = (now, ok)
        if ok:
            result.acked += config.batch
        else:
            result.errors += 1
        if progress is not None:
            progress.advance(task_id)

    tasks: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        for i in range(total_requests):
            due = start + i * interval
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await in_flight.acquire()
            task = asyncio.create_task(one(i))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            result.sent += config.batch
        if tasks:
            await asyncio.gather(*tasks)
        result.wall_s = loop.time() - start
    finally:
        await pool.close()
    for user, entries in slots.items():
        for entry in entries:
            if entry is not None and entry[1]:
                sends[user].extend([entry[0]] * config.batch)
    return result


def _read_replies(path: Path, offset: int, replies: dict[str, list[tuple[str, float]]]) -> int:
    """Read new lines of the fake's JSONL record; collect first parts of replies per recipient."""
    if not path.exists():
        return offset
    with path.open("rb") as fh:
        fh.seek(offset)
        data = fh.read()
    end = data.rfind(b"\n")
    if end < 0:
        return offset
    for line in data[: end + 1].splitlines():
        try:
            call = json.loads(line)
        except ValueError:
            continue
        body = call.get("body")
        message = body.get("message") if isinstance(body, dict) else None
        if not isinstance(message, dict) or call.get("status") != 200:
            continue
        key = str(message.get("metadata", ""))
        if key.endswith("#0"):
            replies[str(call.get("recipient"))].append((key, float(call["ts"])))
    return offset + end + 1


def run_bench(config: BenchConfig) -> dict[str, Any]:
    """Run the benchmark, print the report, and return the summary (also printed as the last line)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    tmp = Path(tempfile.mkdtemp(prefix="amanah-bench-"))
    users = [f"bench-{i:05d}" for i in range(config.users)]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with _database(config, tmp) as url:
            backend = "postgresql" if url.startswith("postgres") else "sqlite"
            console.print(
                f"[bold]bench messages[/bold]: {backend}, rate {config.rate:g}/s for {config.duration:g} s, "
                f"{config.users} users, workers {config.workers if config.workers >= 0 else 'none (acks only)'}"
            )
            linked = _prepare(url, users)
            server_port, graph_port = _free_port(), _free_port()
            env = _env(url, server_port, graph_port, config.workers)
            record = tmp / "calls.jsonl"
            fake_args = ["fake-graph", "--port", str(graph_port), "--record", str(record)]
            if config.echoes:
                fake_args += ["--echo-webhook", f"http://127.0.0.1:{server_port}/webhooks/messenger"]
            procs.append(_spawn(fake_args, env, tmp / "fake.log"))
            serve = ["serve", "--port", str(server_port)] + (["--no-worker"] if config.workers != 0 else [])
            procs.append(_spawn(serve, env, tmp / "server.log"))
            if config.workers > 0:
                worker = ["worker", "--processes", str(config.workers), "--senders", str(config.senders)]
                procs.append(_spawn(worker, env, tmp / "worker.log"))
            _wait_http(f"http://127.0.0.1:{graph_port}/_fake/calls?since=999999999")
            _wait_http(f"http://127.0.0.1:{server_port}/healthz")
            time.sleep(1.0)  # let the workers start polling
            roles = {
                "fake": procs[0],
                "server": procs[1],
                **({"workers": procs[2]} if config.workers > 0 else {}),
            }
            cpu_before = {name: _cpu_s(p.pid) for name, p in roles.items()}
            own_before = time.process_time()
            webhook = f"http://127.0.0.1:{server_port}/webhooks/messenger"
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
            )
            with Progress(*columns, console=console, disable=not config.progress) as progress:
                load = _run_load(config, webhook, users, progress)
                expected = load.acked
                task_id = progress.add_task("replies", total=expected)
                replies: dict[str, list[tuple[str, float]]] = defaultdict(list)
                offset = 0
                deadline = time.monotonic() + config.drain
                last_count, last_change = -1, time.monotonic()
                while time.monotonic() < deadline:
                    offset = _read_replies(record, offset, replies)
                    count = sum(len(v) for v in replies.values())
                    progress.update(task_id, completed=count)
                    if count >= expected:
                        time.sleep(1.0)  # a duplicate would show up now
                        offset = _read_replies(record, offset, replies)
                        break
                    if count != last_count:
                        last_count, last_change = count, time.monotonic()
                    elif time.monotonic() - last_change > 15.0:
                        break  # no progress for 15 s: stop waiting
                    time.sleep(0.3)
            cpu = {name: round(_cpu_s(p.pid) - cpu_before[name], 2) for name, p in roles.items()}
            cpu["load_generator"] = round(time.process_time() - own_before, 2)
            summary = _summarise(config, backend, load, replies, linked)
            summary["cpu_s"] = cpu
            processing = cpu.get("workers", 0.0) + (cpu["server"] if config.workers == 0 else 0.0)
            n = summary["replies"] or 1
            summary["worker_cpu_ms_per_reply"] = round(processing * 1000 / n, 2)
            summary["server_cpu_ms_per_ack"] = (
                round(cpu["server"] * 1000 / max(1, load.acked), 3) if config.workers != 0 else None
            )
    finally:
        for proc in reversed(procs):
            _stop(proc)
        logs = {p.name: p.read_text(errors="replace")[-2000:] for p in tmp.glob("*.log")}
        shutil.rmtree(tmp, ignore_errors=True)
    errors_in_logs = [name for name, text in logs.items() if "Traceback" in text]
    summary["logs_with_tracebacks"] = errors_in_logs
    _report(console, summary)
    print(json.dumps(summary, ensure_ascii=False))
    return summary


def _run_load(config: BenchConfig, url: str, users: list[str], progress: Any) -> LoadResult:
    try:
        import uvloop

        return uvloop.run(_load(config, url, users, progress))
    except ImportError:  # pragma: no cover
        return asyncio.run(_load(config, url, users, progress))


def _summarise(
    config: BenchConfig,
    backend: str,
    load: LoadResult,
    replies: dict[str, list[tuple[str, float]]],
    linked: int,
) -> dict[str, Any]:
    sends = load.sends or {}
    reply_latencies: list[float] = []
    duplicates = 0
    reply_times: list[float] = []
    matched = 0
    for user, got in replies.items():
        keys = [k for k, _ in got]
        duplicates += len(keys) - len(set(keys))
        unique: list[float] = []
        seen: set[str] = set()
        for k, ts in got:
            if k not in seen:
                seen.add(k)
                unique.append(ts)
        reply_times.extend(unique)
        for sent_at, received_at in zip(sends.get(user, []), unique, strict=False):
            reply_latencies.append((received_at - sent_at) * 1000)
            matched += 1
    n_replies = len(reply_times)
    span = (max(reply_times) - min(reply_times)) if n_replies > 1 else 0.0
    acks = load.ack_latencies_ms or []
    acked_per_s = round(load.acked / load.wall_s, 1) if load.wall_s else 0.0
    replies_per_s = round(n_replies / span, 1) if span else None
    summary: dict[str, Any] = {
        "bench": "messages",
        "backend": backend,
        "workers": config.workers,
        "senders": config.senders,
        "rate_offered": config.rate,
        "duration_s": config.duration,
        "users": config.users,
        "linked_users": linked,
        "batch": config.batch,
        "echoes": config.echoes,
        "sent": load.sent,
        "acked": load.acked,
        "errors": load.errors,
        "load_wall_s": round(load.wall_s, 2),
        "acked_msgs_per_s": acked_per_s,
        "ack_p50_ms": _percentile(acks, 0.50),
        "ack_p99_ms": _percentile(acks, 0.99),
        "replies": n_replies,
        "replies_per_s": replies_per_s,
        "reply_p50_ms": _percentile(reply_latencies, 0.50),
        "reply_p99_ms": _percentile(reply_latencies, 0.99),
        "missing_replies": max(0, load.acked - n_replies),
        "duplicate_replies": duplicates,
        "pacing": "disabled",
        "machine": _machine(),
    }
    summary["goals"] = {
        "acks_per_s_ge_1000": acked_per_s >= GOAL_ACKS_PER_S,
        "replies_per_s_ge_500": replies_per_s is not None and replies_per_s >= GOAL_REPLIES_PER_S,
        "reply_p99_le_250ms_at_300": None
        if config.rate != GOAL_REPLY_P99_AT_RATE
        else (summary["reply_p99_ms"] is not None and summary["reply_p99_ms"] <= GOAL_REPLY_P99_MS),
    }
    return summary


def _machine() -> dict[str, Any]:
    cpus: int | None
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count()
    quota = None
    try:
        raw = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if raw and raw[0] != "max":
            quota = round(int(raw[0]) / int(raw[1]), 2)
    except (OSError, ValueError, IndexError):
        pass
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus_visible": cpus,
        "cpu_quota": quota,
        "processor": platform.processor() or platform.machine(),
    }


def _report(console: Any, s: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"bench messages ({s['backend']}, workers {s['workers'] or 'in server'})")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("offered rate (msgs/s)", s["rate_offered"]),
        ("sent / acked / errors", f"{s['sent']} / {s['acked']} / {s['errors']}"),
        ("acknowledged msgs/s", s["acked_msgs_per_s"]),
        ("ack latency p50 / p99 (ms)", f"{s['ack_p50_ms']} / {s['ack_p99_ms']}"),
        ("replies", s["replies"]),
        ("replies/s", s["replies_per_s"]),
        ("reply latency p50 / p99 (ms)", f"{s['reply_p50_ms']} / {s['reply_p99_ms']}"),
        ("missing / duplicate replies", f"{s['missing_replies']} / {s['duplicate_replies']}"),
        (
            "CPU s (server, workers, fake, generator)",
            ", ".join(f"{k} {v}" for k, v in s.get("cpu_s", {}).items()),
        ),
        ("worker CPU ms per reply", s.get("worker_cpu_ms_per_reply")),
        (
            "outbox pacing",
            "disabled for this run (" + ", ".join(f"{k}={v}" for k, v in PACING_OFF.items()) + ")",
        ),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    console.print(table)


__all__ = ["BenchConfig", "LoadResult", "asdict", "event_body", "run_bench"]
