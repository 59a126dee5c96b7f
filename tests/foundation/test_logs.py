"""Logging: one line per event, journald priority prefixes, folded tracebacks, optional log file."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autoretrain.daemon.foundation.logs import setup_logging, stream_is_journal
from tests.support.data import ROOT


@pytest.fixture(autouse=True)
def _restore_root_logger():
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved_handlers:
        root.addHandler(handler)
    root.setLevel(saved_level)


def test_plain_lines_carry_time_level_process_and_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    stream = io.StringIO()
    log = setup_logging("ingest", "INFO", stream=stream)
    log.info("Heartbeat | Price: $1.00")
    log.debug("hidden")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].endswith("| INFO | ingest | Heartbeat | Price: $1.00")
    assert lines[0][:4].isdigit()


def test_traceback_and_multiline_messages_are_folded_into_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    stream = io.StringIO()
    log = setup_logging("trainer", stream=stream)
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        log.exception("training failed")
    log.warning("two\nlines")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert "training failed\\nTraceback (most recent call last):" in lines[0]
    assert "ValueError: bad\\nthing" in lines[0]
    assert lines[1].endswith("WARNING | trainer | two\\nlines")


def test_journal_stream_gets_priority_prefixes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with open(tmp_path / "journal", "w+") as stream:
        info = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{info.st_dev}:{info.st_ino}")
        assert stream_is_journal(stream)
        log = setup_logging("inference", "DEBUG", stream=stream)
        log.debug("d")
        log.info("i")
        log.warning("w")
        log.error("e")
        log.critical("c")
        stream.flush()
        stream.seek(0)
        lines = stream.read().splitlines()
    assert lines == ["<7>inference | d", "<6>inference | i", "<4>inference | w", "<3>inference | e", "<2>inference | c"]


def test_other_stream_is_not_taken_for_the_journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "1:2")
    with open(tmp_path / "x", "w") as stream:
        assert not stream_is_journal(stream)


def test_log_file_receives_the_same_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    stream = io.StringIO()
    log_file = tmp_path / "data" / "trading.log"
    log = setup_logging("supervisor", stream=stream, log_file=log_file)
    log.info("Retrain completed for BTC/USDT")
    for handler in logging.getLogger().handlers:
        handler.flush()
    assert log_file.read_text().strip().endswith("| INFO | supervisor | Retrain completed for BTC/USDT")
    assert stream.getvalue().strip().endswith("Retrain completed for BTC/USDT")


def test_uncaught_exception_in_a_process_is_one_record() -> None:
    code = (
        "from autoretrain.daemon.foundation.logs import setup_logging, log_uncaught\n"
        "log = setup_logging('child')\nlog_uncaught(log)\n"
        "def explode():\n    raise RuntimeError('boom')\nexplode()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "CRITICAL | child | unhandled RuntimeError: boom\\nTraceback" in lines[0]
