"""Validated configuration: one strict model per job section (see the modules beside this one)."""

from raypath.config.base import ConfigError, StrictModel, apply_overrides, load_config, validate_section

__all__ = ["ConfigError", "StrictModel", "apply_overrides", "load_config", "validate_section"]
