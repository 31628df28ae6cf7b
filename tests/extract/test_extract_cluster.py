"""A real two-node Ray cluster on this machine: `ray job submit jobs/extract.py`, slides on both nodes.

The cluster is private to the test: its own free ports, its own temp dir, token auth with a token
kept in the environment (never ~/.ray), and teardown kills only processes that belong to it.
"""

import numpy as np
import pandas as pd
import pytest

from raypath.encoders.registry import build_encoder
from raypath.extract.config import ExtractConfig
from raypath.slides import open_slide, read_tiles, tile_slide
from raypath.slides.synth import write_cohort
from raypath.slides.synth.config import SynthConfig
from raypath.store import FeatureStore

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]



def direct_features(slide_path: str, config: ExtractConfig) -> np.ndarray:
    """The single-process reference: tile, decode and encode one slide without Ray."""
    encoder = build_encoder(config.encoders[0].name)
    with open_slide(slide_path) as reader:
        tiles = read_tiles(reader, tile_slide(reader, config.tiling))
    return encoder(encoder.preprocess(tiles)).numpy() if len(tiles) else np.zeros((0, encoder.embed_dim))


def test_job_submitted_to_a_two_node_cluster_uses_both_nodes(two_node_cluster, tmp_path):
    cohort, out = tmp_path / "cohort", tmp_path / "features"
    write_cohort(SynthConfig(specimens=4, field_um=(600.0, 600.0), workers=1), cohort)
    args = ["--config", "jobs/configs/extract-demo.yaml", "--manifest", str(cohort / "manifest.csv"),
            "--out", str(out), "--run-id", "cluster", "--set", "tiles_per_chunk=4"]
    done = two_node_cluster["submit"](["python", "jobs/extract.py", *args])
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    slides = pd.read_csv(out / "_runs" / "cluster" / "slides.csv").set_index("slide_id")
    assert len(slides) == 8 and set(slides["status"]) <= {"done", "skipped"}
    assert slides["node_id"].nunique() == 2, slides["node_id"]
    config = ExtractConfig.model_validate({"encoders": ["tiny-uni"]})
    store = FeatureStore(out, encoder="tiny-uni", tiling_hash=config.tiling.cache_key())
    assert store.slide_ids() == sorted(slides.index[slides["status"] == "done"])
    for row in pd.read_csv(cohort / "manifest.csv").itertuples():
        expected = direct_features(str(cohort / row.path), config)
        if slides.loc[row.slide_id, "status"] == "skipped":
            assert len(expected) == 0
            continue
        np.testing.assert_allclose(store.read_bag(row.slide_id).features, expected, rtol=1e-4, atol=1e-5)
