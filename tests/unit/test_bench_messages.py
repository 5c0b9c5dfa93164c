"""`amanah bench messages` runs with the outbox sender's pacing off, and says so in its report."""

from __future__ import annotations

import pytest
from rich.console import Console

from amanah.bench.messages import BenchConfig, LoadResult, _env, _report, _summarise
from amanah.settings import Settings


def test_bench_environment_turns_every_bucket_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's and workers' environment, read as Settings, has the thread and Page rates at 0."""
    env = _env("sqlite:///bench.db", 18000, 19100, 1)
    for name, value in env.items():
        if name.startswith("AMANAH_"):
            monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None)
    assert settings.outbox_thread_rate_per_s == 0
    assert settings.outbox_messenger_rate_per_s == 0
    assert settings.outbox_whatsapp_rate_per_s == 0


def test_bench_report_says_pacing_was_disabled() -> None:
    """The printed report and the JSON summary both state that pacing was off for the run."""
    summary = _summarise(BenchConfig(), "sqlite", LoadResult(sent=1, acked=1, wall_s=1.0), {}, 0)
    assert summary["pacing"] == "disabled"
    console = Console(record=True, width=300)
    _report(console, summary)
    text = console.export_text()
    assert "outbox pacing" in text and "disabled for this run" in text
    assert "AMANAH_OUTBOX_THREAD_RATE_PER_S=0" in text
