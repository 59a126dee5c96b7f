"""Subcommands of autoretrainctl, one module per area (data, models, live daemon)."""
