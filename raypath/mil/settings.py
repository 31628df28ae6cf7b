"""Config sections generated from a registry, so a registered loss or backbone brings its own fields.

Adding a robustness loss or a MIL backbone is one decorated function: its weight (for a loss) and
any extra settings it declares become validated, documented config fields here, with unknown keys
still rejected. Declared settings are `(type, pydantic.Field(...))` pairs.
"""

from collections.abc import Mapping
from typing import Any

from pydantic import create_model

from raypath.config import StrictModel

Declared = Mapping[str, tuple[Any, Any]]


def merge_declared(owners: Mapping[str, Declared], *, kind: str) -> dict[str, tuple[Any, Any]]:
    """All declared settings; two registrations declaring one name must declare it identically."""
    fields: dict[str, tuple[Any, Any]] = {}
    owner_of: dict[str, str] = {}
    for owner, declared in owners.items():
        for name, spec in declared.items():
            if name in fields and repr(fields[name]) != repr(spec):
                raise ValueError(f"{kind} {owner!r} and {owner_of[name]!r} declare {name!r} differently")
            fields[name], owner_of[name] = spec, owner
    return fields


def section_model(name: str, *, base: type[StrictModel], doc: str, fields: Mapping[str, tuple[Any, Any]]
                  ) -> type[StrictModel]:
    """A strict pydantic model `name` with `base`'s fields and methods plus `fields`."""
    model = create_model(name, __base__=base, __doc__=doc, __module__=base.__module__, **dict(fields))
    return model
