"""One way to turn command-line flags into config values: typed, never re-parsed as YAML.

A flag names the dotted config field it sets; argparse converts the text with the flag's type, and
the value goes into the config as that Python value after `--set` overrides (explicit flags win).
So `--run-id 0123` stays the string "0123" and `--reader on` is rejected by validation instead of
arriving as True. A flag's help defaults to its field's description: written once, in the config;
a flag with neither is a programming error, refused when the parser is built. One vocabulary across
commands: `--out` for the directory a command writes, `--encoder` for FM names, `--address` for a Ray
cluster, `--tracking-uri` for MLflow; older spellings live on as hidden aliases that log a warning.
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
    """`--<name>` sets config field `key`; `nargs`/`metavar`/`choices`/`action` pass through to
    argparse; `aliases` are deprecated spellings, accepted but hidden from the help."""

    name: str
    key: str
    type: Callable[[str], Any] = str
    help: str | None = None
    nargs: int | str | None = None
    metavar: str | tuple[str, ...] | None = None
    choices: Sequence[Any] | None = None
    action: str | None = None
    aliases: tuple[str, ...] = ()

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


class DeprecatedAlias(argparse.Action):
    """An old spelling of a flag: sets the same destination (extending a list flag) and records
    (old, new) in `deprecated_flags`, which the CLI logs as a warning once logging is set up."""

    def __init__(self, *args: Any, new: str, extend: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.new, self.extend = new, extend

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        if self.extend:
            values = [*(getattr(namespace, self.dest) or []), *values]
        setattr(namespace, self.dest, values)
        namespace.__dict__.setdefault("deprecated_flags", []).append((option_string, self.new))


def add_alias(parser: argparse.ArgumentParser, old: str, *, new: str, dest: str, **options: Any) -> None:
    """`--old` as a hidden, deprecated spelling of `--new` (same destination and type)."""
    parser.add_argument(f"--{old}", dest=dest, action=DeprecatedAlias, new=f"--{new}", default=None,
                        help=argparse.SUPPRESS, **options)


def comma_list(text: str) -> list[str]:
    """`a,b,c` -> ['a', 'b', 'c'] (empty items dropped): lists of FM names and the like."""
    return [item for item in text.split(",") if item]


def encoders_flag(key: str, *, help: str, aliases: tuple[str, ...] = ()) -> Flag:
    """`--encoder NAME[,NAME...]`, repeatable: the one spelling of a list of FMs on every command."""
    return Flag("encoder", key, comma_list, help=help, action="extend", metavar="NAME[,NAME]",
                aliases=aliases)


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
                     example: str, default_config: str | None = None) -> None:
    """`--config FILE`, repeatable `--set key.path=value`, and the command's typed flags. `example`
    is a `--set` this command's config accepts (tests/commands/test_help.py checks every command's);
    the parser keeps `model` as `config_model` so that check needs no command-specific code."""
    default = f" (default: {default_config})" if default_config else ""
    parser.add_argument("--config", type=Path, default=default_config, metavar="FILE",
                        help=f"YAML config file{default}")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override any config field, e.g. --set {example} (repeatable; value read as "
                             "YAML; explicit flags win)")
    parser.set_defaults(config_model=model)
    add_flags(parser, model, flags)


def add_flags(parser: argparse.ArgumentParser, model: type[BaseModel], flags: Sequence[Flag]) -> None:
    """Typed flags for fields of `model` (a command's second settings section takes only these), and
    the Ray start-up flags when `model` has them."""
    for flag in (*flags, *ray_flags(model)):
        text = flag.help or field_description(model, flag.key)
        if not text:
            raise TypeError(f"--{flag.name}: no help (give Flag.help or a description to field {flag.key!r})")
        options: dict[str, Any] = {"dest": flag.dest, "type": flag.type, "default": None}
        shape = {k: v for k, v in (("nargs", flag.nargs), ("metavar", flag.metavar)) if v is not None}
        options.update(shape, **{k: v for k, v in (("choices", flag.choices), ("action", flag.action))
                                 if v is not None})
        parser.add_argument(f"--{flag.name}", help=text, **options)
        for old in flag.aliases:
            add_alias(parser, old, new=flag.name, dest=flag.dest, type=flag.type,
                      extend=flag.action == "extend", **shape)


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
