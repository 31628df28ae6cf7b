"""One way to turn command-line flags into config values: typed, never re-parsed as YAML.

A flag names the dotted config field it sets; argparse converts the text with the flag's type, and
the value goes into the config as that Python value after `--set` overrides (explicit flags win).
So `--run-id 0123` stays the string "0123" and `--reader on` is rejected by validation instead of
arriving as True. A flag's help defaults to its field's description: written once, in the config.
Every command whose config has a `ray` section (it starts Ray) gets the Ray start-up flags here.
"""

import argparse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from raypath.config import RaySettings, absolute, load_config

Model = TypeVar("Model", bound=BaseModel)


@dataclass(frozen=True)
class Flag:
    """`--<name>` sets config field `key`; `nargs`/`metavar`/`choices` pass through to argparse."""

    name: str
    key: str
    type: Callable[[str], Any] = str
    help: str | None = None
    nargs: int | str | None = None
    metavar: str | tuple[str, ...] | None = None
    choices: Sequence[Any] | None = None

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")


RAY_FLAGS = (
    Flag("ray-temp-dir", "temp_dir", absolute, metavar="DIR"),
    Flag("ray-startup-timeout", "startup_timeout_s", float, metavar="SECONDS"),
)
"""Start-up of a local Ray instance (`RaySettings`), on every command that starts Ray."""


def ray_flags(model: type[BaseModel]) -> tuple[Flag, ...]:
    """The Ray start-up flags for `RaySettings` itself or a config with a `ray` section; else none."""
    if model is RaySettings:
        return RAY_FLAGS
    if "ray" not in model.model_fields:
        return ()
    return tuple(replace(flag, key=f"ray.{flag.key}") for flag in RAY_FLAGS)


def comma_list(text: str) -> list[str]:
    """`a,b,c` -> ['a', 'b', 'c'] (empty items dropped): lists of FM names and the like."""
    return [item for item in text.split(",") if item]


def yes_no(text: str) -> bool:
    """`true`/`false` (only these): a boolean config field as a flag value."""
    if text not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return text == "true"


def field_description(model: type[BaseModel], key: str) -> str | None:
    """The description of dotted field `key` of `model` (None when a part is not a model field)."""
    current: Any = model
    info = None
    for part in key.split("."):
        fields = getattr(current, "model_fields", {})
        if part not in fields:
            return None
        info = fields[part]
        current = info.annotation
    return info.description if info else None


def add_config_flags(parser: argparse.ArgumentParser, model: type[BaseModel], flags: Sequence[Flag], *,
                     default_config: str | None = None) -> None:
    """`--config FILE`, repeatable `--set key.path=value`, and the command's typed flags."""
    parser.add_argument("--config", type=Path, default=default_config, help="YAML config file")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config field, e.g. --set train.epochs=5 (value read as YAML)")
    add_flags(parser, model, flags)


def add_flags(parser: argparse.ArgumentParser, model: type[BaseModel], flags: Sequence[Flag]) -> None:
    """Typed flags for fields of `model` (a command's second settings section takes only these), and
    the Ray start-up flags when `model` has them."""
    for flag in (*flags, *ray_flags(model)):
        options: dict[str, Any] = {"dest": flag.dest, "type": flag.type, "default": None,
                                   "help": flag.help or field_description(model, flag.key) or flag.key}
        options.update({k: v for k, v in (("nargs", flag.nargs), ("metavar", flag.metavar),
                                          ("choices", flag.choices)) if v is not None})
        parser.add_argument(f"--{flag.name}", **options)


def flag_values(args: argparse.Namespace, flags: Sequence[Flag]) -> dict[str, Any]:
    """{dotted key: typed value} of the flags given on the command line."""
    return {flag.key: getattr(args, flag.dest) for flag in flags if getattr(args, flag.dest) is not None}


def config_from_args(model: type[Model], args: argparse.Namespace, flags: Sequence[Flag] = (), *,
                     values: Mapping[str, Any] | None = None) -> Model:
    """The stage config: YAML file, then `--set` overrides, then flags and `values` (typed, last)."""
    return load_config(model, args.config, overrides=args.overrides,
                       values={**flag_values(args, (*flags, *ray_flags(model))), **(values or {})})


def config_from_flags(model: type[Model], args: argparse.Namespace, flags: Sequence[Flag]) -> Model:
    """A settings section given by its typed flags alone (defaults for the rest)."""
    return load_config(model, None, values=flag_values(args, (*flags, *ray_flags(model))))
