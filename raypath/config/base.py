"""Strict config models and YAML loading whose errors name the file and the offending key.

Relative paths follow one rule, for every command and every path field: they are relative to the
working directory of the command (not to the config file), and they are made absolute once, when
the config is validated (`LocalPath`, `Location`, `TrackingUri`), so no trial, task or actor that
runs elsewhere ever sees a relative path.
"""

import copy
import difflib
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_args, get_origin

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError

from raypath.paths import is_remote

Model = TypeVar("Model", bound=BaseModel)
SQLITE = "sqlite:///"


def absolute(path: str | os.PathLike) -> Path:
    """`path` made absolute against the working directory (`~` expanded; symlinks kept)."""
    return Path(os.path.abspath(Path(path).expanduser()))


URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/")


def _absolute_location(value: str) -> str:
    """A URI (s3://, file:///, models:/, runs:/) as given; a local path made absolute."""
    return value if is_remote(value) or URI.match(value) else str(absolute(value))


def absolute_sqlite(value: str) -> str:
    """`sqlite:///relative.db` becomes `sqlite:////abs/relative.db`; other URIs are left alone."""
    if not value.startswith(SQLITE) or value.startswith(SQLITE + "/"):
        return value
    database, query = value[len(SQLITE):].partition("?")[::2]
    if database in ("", ":memory:"):
        return value
    return SQLITE + str(absolute(database)) + (f"?{query}" if query else "")


def _as_text(value: Any) -> Any:
    """Kept as text so `s3://` survives (a Path would fold it to `s3:/`)."""
    return os.fspath(value) if isinstance(value, os.PathLike) else value


LocalPath = Annotated[Path, AfterValidator(absolute)]
"""A local file or directory; a relative one is taken from the working directory."""
Location = Annotated[str, BeforeValidator(_as_text), AfterValidator(_absolute_location)]
"""A local path (made absolute like `LocalPath`) or a URI such as s3:// or models:/, kept as text."""
TrackingUri = Annotated[str, AfterValidator(absolute_sqlite)]
"""An MLflow URI; the file of `sqlite:///relative.db` is taken from the working directory."""


TRACKING_STORE = "mlflow.db"
"""The default MLflow store of every command that logs runs: this SQLite file in the directory the
command writes (its `--out`; `compare` reads the one in the sweep's). No server needed; a
`--tracking-uri` (a server, or another file) overrides it on every command alike."""


def default_tracking_uri(directory: Path) -> str:
    """`sqlite:///<directory>/mlflow.db`, absolute: the one default tracking store (`TRACKING_STORE`)."""
    return f"{SQLITE}{(directory / TRACKING_STORE).resolve()}"


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """` (did you mean 'x'?)` naming the nearest of `known` to `name` when it is close, else ''."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


class ConfigError(ValueError):
    """A config file or override that does not validate; the message names file and key."""


def _section(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """(the config model inside a field's type, whether it sits in a list or dict: `x | None`,
    `list[x]` and `dict[str, x]` hold sections too)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    for argument in get_args(annotation):
        found, contained = _section(argument)
        if found is not None:
            return found, contained or get_origin(annotation) in (list, dict)
    return None, False


def _section_fields(model: type[BaseModel], loc: tuple) -> list[str]:
    """The field names of the section that `loc` (an error location) lies in, where known."""
    current: type[BaseModel] | None = model
    parts = iter(loc[:-1])
    for part in parts:
        info = current.model_fields.get(part) if current is not None else None
        if info is None:
            return []
        current, contained = _section(info.annotation)
        if contained:
            next(parts, None)  # the list index or dict key
    return list(current.model_fields) if current is not None else []


def _shown(value: Any) -> str:
    """A rejected value as the user wrote it: YAML's `null`, a path as text, never a Python repr such as
    `None` or `PosixPath(...)`."""
    if value is None:
        return "null"
    if isinstance(value, os.PathLike):
        return f"'{os.fspath(value)}'"
    return repr(value)


def _describe(error: ValidationError, source: str, model: type[BaseModel] | None = None) -> str:
    lines = [f"invalid config in {source}:"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "<root>"
        if item["type"] == "extra_forbidden":
            known = _section_fields(model, item["loc"]) if model is not None else []
            hint = did_you_mean(str(item["loc"][-1]), known)
            lines.append(f"  unknown key '{key}' (not a field of this section){hint}")
        elif not item["loc"] or isinstance(item.get("input"), dict):
            lines.append(f"  {'section' if item['loc'] else 'config'} '{key}': {item['msg']}")
        else:
            lines.append(f"  key '{key}': {item['msg']} (got {_shown(item.get('input'))})")
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
    section(data, keys[:-1], source=source)[keys[-1]] = value


def section(data: dict[str, Any], keys: list[str], *, source: str) -> dict[str, Any]:
    """`data[k1]...[kn]`, the sections created where absent; refuses to descend into a non-section."""
    node = data
    for key in keys:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{source}: '{key}' is not a section")
    return node


def dotted_items(data: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[list[str], Any]]:
    """(key path, value) of every value inside nested sections; an empty section is a value itself."""
    for key, value in data.items():
        if isinstance(value, Mapping) and value:
            yield from dotted_items(value, (*prefix, key))
        else:
            yield [*prefix, key], value


def overlay(defaults: Mapping[str, Any], override: Mapping[str, Any], *, source: str) -> dict[str, Any]:
    """`override` set over a copy of `defaults` key path by key path, as `--set` sets dotted keys:
    sections merge, other values replace, and an empty section adds the section without clearing it."""
    data = copy.deepcopy(dict(defaults))
    for keys, value in dotted_items(override):
        if isinstance(value, Mapping):
            section(data, keys, source=source)
        else:
            set_dotted(data, keys, value, source=source)
    return data


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
        given = [*(overrides or []), *(f"{k}={_shown(v)}" for k, v in (values or {}).items())]
        suffix = f" with overrides {', '.join(given)}" if given else ""
        raise ConfigError(_describe(exc, source + suffix, model)) from None


def validate_section(model: type[Model], data: dict[str, Any], *, source: str) -> Model:
    """Validate one section of a larger config (e.g. the demo's `sweep:`), naming where it came from."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source, model)) from None
