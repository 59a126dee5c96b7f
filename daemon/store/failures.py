"""What a failing store means for the operator: every `sqlite3.DatabaseError` becomes one line naming the file,
what is wrong with it and what to do, with exit 75 (a bug it is not: 70 would send the operator to report one).

SQLite's own messages ("database disk image is malformed", "attempt to write a readonly database") say what
broke but not what to do; `StoreProblem` adds that, once, for the daemon's start check, its children and every
`autoretrainctl` command.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard

from autoretrain.daemon.foundation.errors import StoreError

DAMAGED, READ_ONLY, UNREADABLE, BUSY, FULL = "damaged", "read-only", "unreadable", "busy", "full"
_VERBS = {DAMAGED: "is damaged", READ_ONLY: "is read-only", UNREADABLE: "cannot be opened", BUSY: "is busy",
          FULL: "cannot grow: its disk is full"}
_HINTS = {
    DAMAGED: "stop the daemon, then `autoretrainctl store check` shows the damage and `autoretrainctl store recover` "
             "saves what is still readable into a new store",
    READ_ONLY: "the daemon must write it: check the file's owner and mode and whether its filesystem is mounted "
               "read-only (`autoretrainctl store check` tells when it is writable again)",
    UNREADABLE: "it must be a regular file that the daemon's user can read and write (`autoretrainctl store check` "
                "tells what is wrong with it)",
    BUSY: "another process holds its write lock for too long: try again",
    FULL: "free space on its filesystem (`autoretrainctl store check` shows the free space); the daemon's processes "
          "wait for it and go on by themselves",
}
#: SQLite's primary result codes, by what they mean for the operator (`sqlite_errorname` is e.g. SQLITE_IOERR_SHORT_READ)
_KIND_OF_CODE = {"SQLITE_CORRUPT": DAMAGED, "SQLITE_NOTADB": DAMAGED, "SQLITE_IOERR": DAMAGED,
                 "SQLITE_READONLY": READ_ONLY, "SQLITE_CANTOPEN": UNREADABLE, "SQLITE_PERM": UNREADABLE,
                 "SQLITE_AUTH": UNREADABLE, "SQLITE_BUSY": BUSY, "SQLITE_LOCKED": BUSY, "SQLITE_FULL": FULL}
_KIND_OF_TEXT = (("malformed", DAMAGED), ("not a database", DAMAGED), ("disk i/o", DAMAGED), ("readonly", READ_ONLY),
                 ("read-only", READ_ONLY), ("unable to open", UNREADABLE), ("locked", BUSY), ("full", FULL))


@dataclass(frozen=True)
class StoreProblem:
    """What is wrong with the store (`kind`, one of the constants above) and SQLite's or the OS's own words."""

    kind: str
    detail: str

    def sentence(self, path: str | Path) -> str:
        """`store PATH is damaged: DETAIL; what to do` — one line."""
        detail = " ".join(self.detail.split())
        return f"store {path} {_VERBS[self.kind]}: {detail}; {_HINTS[self.kind]}"

    def error(self, path: str | Path) -> StoreError:
        return StoreError(self.sentence(path))


def is_store_failure(exc: BaseException) -> TypeGuard[sqlite3.DatabaseError]:
    """A failure of the store's file (damaged, full, read-only, busy), not of our SQL: a ProgrammingError is
    the sqlite3 module misused, a bug that keeps its traceback."""
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.ProgrammingError)


def classify(exc: sqlite3.DatabaseError) -> StoreProblem:
    """The kind of a SQLite failure, from its result code (or its message where the code is missing)."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    primary = "_".join(name.split("_")[:2])
    kind = _KIND_OF_CODE.get(primary)
    if kind is None:
        text = str(exc).lower()
        kind = next((k for fragment, k in _KIND_OF_TEXT if fragment in text), DAMAGED)
    return StoreProblem(kind, str(exc))


def describe_failure(path: str | Path, exc: sqlite3.DatabaseError) -> str:
    """One line for a `sqlite3.DatabaseError` that reached a command or a process: file, problem, what to do."""
    return classify(exc).sentence(path)


def store_error(path: str | Path, exc: sqlite3.DatabaseError) -> StoreError:
    """The StoreError (exit 75) to raise in place of a raw `sqlite3.DatabaseError`."""
    return StoreError(describe_failure(path, exc))
