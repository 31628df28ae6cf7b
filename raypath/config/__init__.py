"""Validated configuration: one strict model per job section (see the modules beside this one)."""

from raypath.config.base import (
    ConfigError,
    LocalPath,
    Location,
    StrictModel,
    TrackingUri,
    absolute,
    absolute_sqlite,
    apply_overrides,
    default_tracking_uri,
    did_you_mean,
    load_config,
    overlay,
    validate_section,
)
from raypath.config.ray_settings import RayJob, RaySettings
from raypath.config.registry import Registry, UnknownNameError

__all__ = ["ConfigError", "LocalPath", "Location", "RayJob", "RaySettings", "Registry", "StrictModel",
           "TrackingUri", "UnknownNameError", "absolute", "absolute_sqlite", "apply_overrides",
           "default_tracking_uri", "did_you_mean", "load_config", "overlay", "validate_section"]
