"""Native journald records on a real datagram socket standing in for /run/systemd/journal/socket."""

from __future__ import annotations

import logging
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoretrain.daemon.foundation.journal import MAX_MESSAGE_BYTES, JournalHandler, journal_handler


def parse(datagram: bytes) -> dict[str, str]:
    """The native protocol's binary form: NAME\\n, 64-bit little-endian length, value, \\n."""
    fields, at = {}, 0
    while at < len(datagram):
        newline = datagram.index(b"\n", at)
        name = datagram[at:newline].decode()
        (length,) = struct.unpack("<Q", datagram[newline + 1:newline + 9])
        fields[name] = datagram[newline + 9:newline + 9 + length].decode()
        assert datagram[newline + 9 + length:newline + 10 + length] == b"\n"
        at = newline + 10 + length
    return fields


@pytest.fixture
def journald(tmp_path: Path) -> Iterator[tuple[socket.socket, Path]]:
    path = tmp_path / "journal.socket"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.settimeout(5)
    yield server, path
    server.close()


def test_each_record_names_its_process_priority_and_keeps_a_traceback_in_one_record(journald) -> None:
    server, path = journald
    fallback = logging.StreamHandler()
    handler = JournalHandler("trainer", fallback, path)
    logger = logging.getLogger("autoretrain.test.journal")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        logger.warning("Retrain failed for %s", "BTC/USDT")
        warning = parse(server.recv(1 << 20))
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("trainer failed")
        error = parse(server.recv(1 << 20))
        logger.info("x" * (MAX_MESSAGE_BYTES * 2))
        long = parse(server.recv(1 << 20))
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert warning["MESSAGE"] == "Retrain failed for BTC/USDT" and warning["PRIORITY"] == "4"
    assert warning["SYSLOG_IDENTIFIER"] == "autoretrain-trainer" and warning["AUTORETRAIN_PROCESS"] == "trainer"
    assert warning["LOGGER"] == "autoretrain.test.journal" and warning["CODE_FUNC"].startswith("test_each_record")
    assert error["PRIORITY"] == "3" and error["MESSAGE"].startswith("trainer failed\nTraceback (most recent call last):")
    assert error["MESSAGE"].rstrip().endswith("ValueError: boom")
    assert long["MESSAGE"].endswith(" [cut]") and len(long["MESSAGE"]) < MAX_MESSAGE_BYTES + 10


def test_without_a_journal_socket_the_stderr_handler_stays(tmp_path: Path) -> None:
    fallback = logging.StreamHandler()
    assert journal_handler("ingest", fallback, tmp_path / "absent.socket") is fallback


def test_a_journal_that_goes_away_falls_back_to_stderr(journald, capsys: pytest.CaptureFixture[str]) -> None:
    server, path = journald
    fallback = logging.StreamHandler()
    handler = JournalHandler("ingest", fallback, path)
    server.close()
    path.unlink()
    record = logging.LogRecord("autoretrain", logging.ERROR, __file__, 1, "still seen", None, None)
    handler.handle(record)
    handler.close()
    assert "still seen" in capsys.readouterr().err
