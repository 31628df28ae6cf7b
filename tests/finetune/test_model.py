"""The finetune model in plain torch on real slide tiles: only adapters and head train, the FM's base
weights stay bit-identical; tiles come out the same from the slides and from the tile cache."""

import numpy as np
import torch
from finetunekit import finetune_config, frozen_state, trainable_state

from raypath.finetune.data import open_data, step_batches, step_inputs
from raypath.finetune.model import build_model, step
from raypath.finetune.plan import ensure_plan
from raypath.finetune.run import absolute


def _data(ft_cohort, out, **changes):
    config = absolute(finetune_config(ft_cohort, out, **changes))
    plan = ensure_plan(manifest=config.manifest, output_dir=config.output_dir, tiling=config.tiling)
    return config, open_data(config, plan)


def test_only_adapters_and_head_change(ft_cohort, tmp_path):
    config, data = _data(ft_cohort, tmp_path)
    prepared = data.prepared
    model = build_model(config, n_outputs=prepared.n_outputs, n_scanners=len(prepared.scanner_codes))
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in n or n.startswith("mil.") for n in trained)
    assert any(n.startswith("encoder.") for n in trained), "the FM has adapters that train"
    before_trained, before_frozen = trainable_state(model), frozen_state(model)
    assert any(n.startswith("encoder.") for n in before_frozen)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for slides in step_batches(prepared.train_groups, specimens=2):
        pixels, batch = step_inputs(data, model.encoder, slides, tiles=8, generator=generator)
        assert pixels.shape[0] == int(batch.mask.sum()) and bool((batch.tile_group >= 0).any())
        losses.append(step(model, optimizer, pixels, batch))
    assert set(losses[0]) >= {"loss", "task", "infonce", "score_consistency", "tile_consistency",
                              "fm_tile_consistency"}
    after_trained, after_frozen = trainable_state(model), frozen_state(model)
    changed = {n for n in before_trained if not torch.equal(before_trained[n], after_trained[n])}
    assert {n for n in changed if "lora_B" in n}, "adapters moved"
    assert {n for n in changed if n.startswith("mil.")}, "the head moved"
    assert before_frozen.keys() == after_frozen.keys()
    assert all(torch.equal(before_frozen[n], after_frozen[n]) for n in before_frozen), "base FM untouched"


def test_tile_cache_gives_the_slide_reader_pixels(ft_cohort, tmp_path):
    _, from_slides = _data(ft_cohort, tmp_path)
    _, from_cache = _data(ft_cohort, tmp_path, tiles={"source": "cache"})
    rows = np.array([5, 0, 3])
    for slide in (0, 3):
        np.testing.assert_array_equal(from_slides.source.tiles(slide, rows),
                                      from_cache.source.tiles(slide, rows))
    cached = sorted((tmp_path / "tiles").rglob("*.npy"))
    assert len(cached) == 2 and np.load(cached[0]).dtype == np.uint8
