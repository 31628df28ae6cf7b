"""Strict config models and YAML loading whose errors name the file and the offending key."""

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

Model = TypeVar("Model", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


class ConfigError(ValueError):
    """A config file or override that does not validate; the message names file and key."""


def _describe(error: ValidationError, source: str) -> str:
    lines = [f"invalid config in {source}:"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "<root>"
        if item["type"] == "extra_forbidden":
            lines.append(f"  unknown key '{key}' (not a field of this section)")
        elif not item["loc"] or isinstance(item.get("input"), dict):
            lines.append(f"  {'section' if item['loc'] else 'config'} '{key}': {item['msg']}")
        else:
            lines.append(f"  key '{key}': {item['msg']} (got {item.get('input')!r})")
    return "\n".join(lines)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse `a.b.c=value` (value as YAML) from a `--set` CLI flag."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key.path=value")
    key, raw = text.split("=", 1)
    return key.strip().split("."), yaml.safe_load(raw)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set dotted keys in a nested dict; the model's validation then rejects unknown ones."""
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{text}': '{key}' is not a section")
        node[keys[-1]] = value
    return data


def load_config(
    model: type[Model], path: str | Path | None = None, *, overrides: list[str] | None = None
) -> Model:
    """Load a YAML file (or defaults when no path) into `model`, then apply `key=value` overrides."""
    source = str(path) if path else "<defaults>"
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source} is not valid YAML: {exc}") from exc
        except OSError as exc:
            raise ConfigError(f"cannot read config {source}: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: top level must be a mapping of keys")
    data = apply_overrides(data, overrides or [])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        suffix = f" with overrides {overrides}" if overrides else ""
        raise ConfigError(_describe(exc, source + suffix)) from None


def validate_section(model: type[Model], data: dict[str, Any], *, source: str) -> Model:
    """Validate one section of a larger config (e.g. the demo's `sweep:`), naming where it came from."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None
