"""Fine-tuning's data path honours the split policy: the labels' split column, and a scanner the
cohort declares held out is never in a step's batch (a spy on the tiles each step selects, drawn
as the worker loop draws them: `step_batches` and `step_inputs` over the training groups, of which
each worker's shard is a share)."""

import json
import shutil
from pathlib import Path

import torch
from finetunekit import finetune_config

from raypath.cohort.declaration import CohortDeclaration, write_declaration
from raypath.encoders.registry import build_encoder
from raypath.finetune.data import open_data, step_batches, step_inputs
from raypath.finetune.run import prepare_run
from raypath.mil.sampling import Collator

HELD_OUT = "hamamatsu-s360"


def test_finetune_never_steps_on_a_held_out_scanner(ft_cohort, tmp_path, monkeypatch):
    labels = tmp_path / "cohort" / "labels.csv"
    labels.parent.mkdir()
    shutil.copy(ft_cohort / "labels.csv", labels)  # the session cohort stays as it is
    write_declaration(CohortDeclaration(held_out_scanners=[HELD_OUT]), labels.parent)
    config = finetune_config(ft_cohort, tmp_path / "out", labels=labels, split={})
    loop_config = prepare_run(config)
    data = open_data(config, Path(loop_config["plan"]))
    slides, split = data.prepared.bagset.slides, data.prepared.split
    assert ((slides["scanner"] == HELD_OUT) & (split == "unused")).any()  # training patients scanned on it
    assert (split[slides["scanner"] != HELD_OUT] == slides.loc[slides["scanner"] != HELD_OUT, "split"]).all()

    selected: list[str] = []
    original = Collator.select

    def spy(self, chosen, **kwargs):
        selected.extend(self.scanner_names[chosen])
        return original(self, chosen, **kwargs)

    monkeypatch.setattr(Collator, "select", spy)
    encoder = build_encoder(config.encoder, seed=config.seed)
    for slides_of_step in step_batches(data.prepared.train_groups, specimens=config.specimens_per_step):
        step_inputs(data, encoder, slides_of_step, tiles=config.tiles_per_scan,
                    generator=torch.Generator().manual_seed(0))
    data.source.close()
    assert selected and set(selected) == {"aperio-gt450"}
    audit = json.loads((tmp_path / "out" / "leakage.json").read_text())
    assert audit["passed"] and audit["held_out_scanners"] == [HELD_OUT]
    assert set(audit["splits"]["train"]["scanners"]) == {"aperio-gt450"}
