"""One registry type for everything selected by name in a config: FM cards, MIL backbones,
robustness losses. Decorators add entries where they are defined (adding one touches one place);
a name is registered once; an unknown name is bad input that says which names exist."""

from typing import TypeVar

from raypath.config.base import did_you_mean

T = TypeVar("T")


class UnknownNameError(KeyError, ValueError):
    """A name no entry has: bad input (a ValueError, exit 2), still a KeyError for lookups."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class Registry(dict[str, T]):
    """Entries of one `kind` by name, in registration order (a dict: iterate, `in`, `[name]`)."""

    def __init__(self, kind: str, *, error: type[UnknownNameError] = UnknownNameError) -> None:
        super().__init__()
        self.kind, self.error = kind, error

    def add(self, name: str, entry: T) -> T:
        """Register `entry` under `name`; a second entry under one name is a programming error."""
        if name in self:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self[name] = entry
        return entry

    def lookup(self, name: str) -> T:
        """The entry named `name`, or `self.error` naming the nearest and every known name."""
        if name not in self:
            known = ", ".join(self)
            raise self.error(f"unknown {self.kind} {name!r}{did_you_mean(name, self)}; known: {known}")
        return self[name]
