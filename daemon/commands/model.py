"""autoretrainctl commands for the model area (filled in by its issue)."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add this area's subcommands to the parser."""
