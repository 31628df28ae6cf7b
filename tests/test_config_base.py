"""The strict config base: unknown keys and bad values are named with their file."""

from pathlib import Path

import pytest

from raypath.config import ConfigError, load_config
from raypath.config.tiling import TilingConfig


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
