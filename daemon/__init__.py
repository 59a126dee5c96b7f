"""autoretrain daemon: the processes, the stores and the policies they run."""

__version__ = "0.1.0"
