"""What the model library raises: one-line reasons, no exit codes (the daemon maps them at its edges).

Every message is meant for an operator as it stands (`str(error)`); `autoretrain.daemon.foundation.
errors.exit_code` gives each class its sysexits-style code where a command ends.
"""

from __future__ import annotations


class ModelError(Exception):
    """Base class: a model, a version or the registry cannot be used as asked."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class ModelRejected(ModelError):
    """A model version that must not be used; `reason` says why in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = str(self)


class RegistryError(ModelError):
    """The registry's own files are unreadable (hand-edited, corrupt disk)."""


class InvalidVersion(ModelError):
    """A version name that is not `vNNNN` (or its number)."""


class VersionNotFound(ModelError):
    """A version that is not in the registry."""


class NothingToRollBack(ModelError):
    """Rollback asked for with no earlier champion on disk."""


class ChampionChanged(ModelError):
    """Someone else moved the promoted pointer since a job read it (promote with `expected`)."""

    def __init__(self, expected: str | None, current: str | None) -> None:
        super().__init__(f"the promoted model changed from {expected or 'none'} to {current or 'none'} meanwhile")
        self.expected, self.current = expected, current


class TrainingAborted(ModelError):
    """The job was asked to stop (daemon shutdown, cancelled retrain); nothing was registered."""


class DeviceUnavailable(ModelError):
    """The configured training device does not exist here (cuda without a GPU)."""
