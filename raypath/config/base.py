"""Strict config models and YAML loading whose errors name the file and the offending key."""

import re
from collections.abc import Mapping
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


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 core scalars: only true/false are booleans, a leading
    zero makes no number, `1e-3` is a float and dates stay text, so `on`, `no`, `0123` or
    `2024-01-01` (ids, scanner names, run ids) arrive as the strings they look like."""


_REPLACED = ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
             "tag:yaml.org,2002:timestamp")
_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _REPLACED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[0-9]+[eE][-+]?[0-9]+)"
               r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?(?:0|[1-9][0-9_]*)|0x[0-9a-fA-F_]+|0o[0-7_]+)$"),
    list("-+0123456789"))


def _construct_int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    return int(loader.construct_scalar(node).replace("_", ""), 0)


_Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def parse_yaml(text: str) -> Any:
    """YAML (1.2 scalars) as Python data: config files and `--set` values are read by this alone."""
    return yaml.load(text, Loader=_Yaml12Loader)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse `a.b.c=value` (value as YAML) from a `--set` CLI flag."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key.path=value")
    key, raw = text.split("=", 1)
    return key.strip().split("."), parse_yaml(raw)


def set_dotted(data: dict[str, Any], keys: list[str], value: Any, *, source: str) -> None:
    """`data[k1][k2]...[kn] = value`, creating sections; refuses to descend into a non-section."""
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{source}: '{key}' is not a section")
    node[keys[-1]] = value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set dotted keys in a nested dict; the model's validation then rejects unknown ones."""
    for text in overrides:
        keys, value = parse_override(text)
        set_dotted(data, keys, value, source=f"override '{text}'")
    return data


def load_config(
    model: type[Model], path: str | Path | None = None, *, overrides: list[str] | None = None,
    values: Mapping[str, Any] | None = None,
) -> Model:
    """Load a YAML file (or defaults when no path) into `model`, then `key=value` overrides (YAML
    text, from `--set`), then `values` ({dotted key: Python value}, from typed flags) last."""
    source = str(path) if path else "<defaults>"
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = parse_yaml(Path(path).read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source} is not valid YAML: {exc}") from exc
        except OSError as exc:
            raise ConfigError(f"cannot read config {source}: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: top level must be a mapping of keys")
    data = apply_overrides(data, overrides or [])
    for key, value in (values or {}).items():
        set_dotted(data, key.split("."), value, source=f"flag for '{key}'")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        given = [*(overrides or []), *(f"{k}={v!r}" for k, v in (values or {}).items())]
        suffix = f" with overrides {given}" if given else ""
        raise ConfigError(_describe(exc, source + suffix)) from None


def validate_section(model: type[Model], data: dict[str, Any], *, source: str) -> Model:
    """Validate one section of a larger config (e.g. the demo's `sweep:`), naming where it came from."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None
