"""Faults of the machine rather than of the input: they end a command with one line and exit status 1
(bad input ends with exit status 2 through the ValueError family; see `raypath.cli`)."""


class MachineError(RuntimeError):
    """The machine, not the input, stopped the command; the message says what to change."""


class RayStartError(MachineError):
    """The local Ray instance did not come up (in time, or at all)."""
