"""CLI subcommands; shared flag helpers live here so every command reads configs the same way."""

import argparse
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from raypath.config import load_config

Model = TypeVar("Model", bound=BaseModel)


def add_config_arguments(parser: argparse.ArgumentParser, *, default: str | None = None) -> None:
    """`--config FILE` and repeatable `--set key.path=value` overrides."""
    parser.add_argument("--config", type=Path, default=default, help="YAML config file")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a config field, e.g. --set train.lr=1e-3")


def config_from_args(model: type[Model], args: argparse.Namespace, extra: list[str] | None = None) -> Model:
    """Load the config named on the command line; explicit CLI flags come last and win."""
    return load_config(model, args.config, overrides=[*args.overrides, *(extra or [])])
