"""Store commands: `store check` (is the store usable, and what is in it) and `store recover` (save what is readable).

`check` reads the store without changing it and works beside a running daemon: exit 0 when the store is healthy,
75 with the one line autoretraind would print when it is damaged, unreadable or read-only. `recover` renames the
store under the daemon's feet, so it takes the daemon's own lock on the state directory first: while autoretraind
runs it refuses (exit 75), and while it recovers no daemon can start.
"""

from __future__ import annotations

import argparse
from typing import Any

from autoretrain.daemon.cli.arguments import add_json_flag, emit
from autoretrain.daemon.foundation.config_schema import Config
from autoretrain.daemon.foundation.errors import NoInputError, StoreError
from autoretrain.daemon.store.health import StoreHealth, inspect_store
from autoretrain.daemon.store.recovery import Recovery, recover_store
from autoretrain.daemon.supervisor.runtime import AlreadyRunning, lock_state_dir


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add `store check` and `store recover` to the parser."""
    store = commands.add_parser("store", parents=[common], help="check the store, or recover a damaged one",
                                description="Check the SQLite store (integrity, schema, rows, space) or write what is "
                                            "still readable in a damaged one into a new store.")
    actions = store.add_subparsers(dest="store_command", metavar="ACTION", parser_class=type(store))
    actions.required = True
    check = actions.add_parser("check", parents=[common], help="integrity, schema version, rows per table, free space",
                               description="Read the whole store (SQLite's quick check), its schema version, rows per "
                                           "table and free space; exit 0 when healthy, 75 when damaged, unreadable "
                                           "or read-only. Safe while the daemon runs.")
    check.add_argument("--full", action="store_true",
                       help="SQLite's full integrity check: also every index against its table (slower)")
    add_json_flag(check)
    check.set_defaults(handler=run_check)
    recover = actions.add_parser("recover", parents=[common], help="save what is readable into a new store",
                                 description="Write every readable row of the store into a new one that takes its "
                                             "place; the damaged store is kept beside it, renamed "
                                             "autoretrain.db.damaged-<time>. The daemon must be stopped.")
    add_json_flag(recover)
    recover.set_defaults(handler=run_recover)


def _size(count: int | None) -> str:
    if count is None:
        return "?"
    if count < 1024:
        return f"{count} bytes"
    value = float(count)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024:
            return f"{value:.1f} {unit}"
    return f"{value / 1024:.1f} TiB"


def _check_text(health: StoreHealth) -> str:
    state = "healthy" if health.healthy else f"NOT USABLE ({health.problem.kind if health.problem else '?'})"
    integrity = "; ".join(health.integrity[:3]) or "not checked"
    integrity = integrity if len(integrity) <= 300 else integrity[:297] + "..."
    version = "?" if health.schema_version is None else str(health.schema_version)
    lines = [f"store {health.path}: {state}",
             f"  integrity: {integrity}",
             f"  schema version: {version} (this version of autoretrain writes {health.expected_version})",
             f"  writable: {'not known' if health.writable is None else 'yes' if health.writable else 'no'}",
             f"  file: {_size(health.file_bytes)}, WAL {_size(health.wal_bytes)}; {health.page_count or '?'} pages of "
             f"{health.page_size or '?'} bytes, {'?' if health.free_pages is None else health.free_pages} free; "
             f"disk free {_size(health.disk_free_bytes)}"]
    if health.tables:
        width = max(len(name) for name in health.tables)
        lines.append("  rows:")
        lines += [f"    {name:<{width}}  {'unreadable' if rows is None else rows}" for name, rows in health.tables.items()]
    lines += [f"  note: {note}" for note in health.notes]
    return "\n".join(lines)


def run_check(args: argparse.Namespace, config: Config) -> int:
    health = inspect_store(config.db_path, full=args.full)
    if not health.exists:
        raise NoInputError(f"no store at {config.db_path}: nothing has been stored yet")
    emit(args, health.as_dict(), _check_text(health))
    if health.problem is not None:
        raise health.problem.error(config.db_path)
    return 0


def _recover_text(result: Recovery) -> str:
    lines = [f"recovered {result.path}; the damaged store is kept as {result.kept_as}"]
    if result.schema_page_rebuilt:
        lines.append("  its first page was unreadable: rebuilt from this version's schema to reach the rest")
    width = max(len(t.name) for t in result.tables)
    lines.append(f"  {'table':<{width}}  {'before':>9}  {'recovered':>9}  {'lost':>9}")
    for table in result.tables:
        before = "?" if table.before is None else str(table.before)
        lost = "?" if table.lost is None else str(table.lost)
        notes = []
        if table.damaged_regions:
            notes.append(f"{table.damaged_regions} damaged region{'s' if table.damaged_regions > 1 else ''} skipped")
        if table.found_on_pages:
            notes.append(f"{table.found_on_pages} read off unreachable pages")
        if table.rejected:
            notes.append(f"{table.rejected} refused (parent row lost or values that cannot be right)")
        if not table.in_damaged_store:
            notes.append("not in the damaged store")
        lines.append(f"  {table.name:<{width}}  {before:>9}  {table.recovered:>9}  {lost:>9}"
                     + (f"  ({'; '.join(notes)})" if notes else ""))
    for name in result.tables_left_behind:
        lines.append(f"  {name}: unknown to this version, left in the damaged store")
    holes = [s for s in result.candle_series if s["holes"]]
    lines.append("candles: the daemon's backfill fetches what is missing after the newest stored candle"
                 + ("; refill the holes inside the history with `autoretrainctl download`:" if holes else ""))
    for series in holes:
        lines.append(f"  {series['symbol']} {series['timeframe']} ({series['exchange']}): {series['missing']} candles "
                     f"missing in {series['holes']} hole{'s' if series['holes'] > 1 else ''}, the first after "
                     f"{series['first_hole']['after']}: "
                     f"autoretrainctl download {series['symbol']} --timeframe {series['timeframe']} "
                     f"--since {series['first_hole']['after'][:10]}")
    return "\n".join(lines)


def run_recover(args: argparse.Namespace, config: Config) -> int:
    if not config.db_path.exists():
        raise NoInputError(f"no store at {config.db_path}: nothing to recover")
    try:
        lock = lock_state_dir(config.state_dir)
    except AlreadyRunning as exc:
        raise StoreError(f"{exc}: stop it before `store recover` (systemctl stop autoretrain)") from None
    try:
        result = recover_store(config.db_path)
    finally:
        lock.close()
    payload: dict[str, Any] = result.as_dict()
    emit(args, payload, _recover_text(result))
    return 0
