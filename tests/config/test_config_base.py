"""The strict config base: unknown keys and bad values are named with their file."""

from pathlib import Path

import pytest

from raypath.config import ConfigError, load_config
from raypath.slides.config import TilingConfig


def test_defaults_load_without_a_file():
    config = load_config(TilingConfig)
    assert config.tile_px == 224 and config.target_mpp == 0.5


def test_unknown_key_names_key_and_file(tmp_path: Path):
    path = tmp_path / "tiling.yaml"
    path.write_text("tile_px: 256\ntile_size: 3\n")
    with pytest.raises(ConfigError) as error:
        load_config(TilingConfig, path)
    assert "tile_size" in str(error.value) and str(path) in str(error.value)


def test_nested_unknown_key_is_named(tmp_path: Path):
    path = tmp_path / "tiling.yaml"
    path.write_text("tissue:\n  otsu: true\n")
    with pytest.raises(ConfigError, match=r"tissue\.otsu"):
        load_config(TilingConfig, path)


def test_bad_value_names_key(tmp_path: Path):
    path = tmp_path / "tiling.yaml"
    path.write_text("target_mpp: -1\n")
    with pytest.raises(ConfigError, match="target_mpp"):
        load_config(TilingConfig, path)


def test_overrides_win_and_are_validated(tmp_path: Path):
    path = tmp_path / "tiling.yaml"
    path.write_text("tile_px: 256\n")
    assert load_config(TilingConfig, path, overrides=["tile_px=512"]).tile_px == 512
    assert load_config(TilingConfig, overrides=["tissue.closing_um=10"]).tissue.closing_um == 10
    with pytest.raises(ConfigError, match="nope"):
        load_config(TilingConfig, overrides=["nope=1"])


def test_cache_key_changes_with_geometry_not_reader():
    base = TilingConfig()
    assert base.cache_key() == TilingConfig(reader="openslide").cache_key()
    assert base.cache_key() != TilingConfig(tile_px=256).cache_key()
    assert base.cache_key() != TilingConfig(target_mpp=0.25).cache_key()


@pytest.mark.parametrize(("text", "value"), [
    ("0123", "0123"), ("on", "on"), ("no", "no"), ("2024-01-01", "2024-01-01"), ("true", True),
    ("12", 12), ("1e-3", 0.001), ("0.5", 0.5), ("[a, 007]", ["a", "007"]),
])
def test_yaml_values_follow_yaml_1_2_so_ids_stay_text(text, value):
    from raypath.config.base import parse_yaml

    assert parse_yaml(text) == value


def test_set_overrides_and_typed_values_apply_in_order(tmp_path: Path):
    path = tmp_path / "tiling.yaml"
    path.write_text("tile_px: 256\nreader: cucim\n")
    config = load_config(TilingConfig, path, overrides=["tile_px=512", "tissue.closing_um=8"],
                         values={"tile_px": 128})
    assert (config.tile_px, config.reader, config.tissue.closing_um) == (128, "cucim", 8.0)
    with pytest.raises(ConfigError, match="reader"):
        load_config(TilingConfig, values={"reader": "on"})


def test_overlay_sets_a_nested_override_key_by_key_as_set_does():
    from raypath.config import overlay

    defaults = {"features": {"root": "r", "fms": ["a"]}, "heatmaps": {"manifest": "m"}, "seed": 0}
    given = {"features": {"fms": ["b"]}, "heatmaps": {}, "extra": {}, "seed": 1}
    assert overlay(defaults, given, source="demo") == {
        "features": {"root": "r", "fms": ["b"]}, "heatmaps": {"manifest": "m"}, "extra": {}, "seed": 1}
    assert defaults["features"]["fms"] == ["a"]  # the defaults are copied, never changed
    with pytest.raises(ConfigError, match="demo: 'seed' is not a section"):
        overlay(defaults, {"seed": {"value": 2}}, source="demo")
