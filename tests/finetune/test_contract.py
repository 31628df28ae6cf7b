"""`raypath finetune` keeps the MIL engine's training contract: validation metrics every epoch (on
stdout and in MLflow), early stopping on the engine's settings with the whole worker group stopping
together, the best epoch's weights as the model, and the final metrics of `raypath train`'s
evaluation function on the same scores (configured robustness k, reasons of undefined metrics as
MLflow tags)."""

from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
import yaml
from finetunekit import finetune_config

from raypath.cli import main
from raypath.finetune.data import open_data
from raypath.finetune.evaluate import predict_slides, restore
from raypath.finetune.publish import tracking_uri
from raypath.finetune.run import absolute, prepare_run
from raypath.tracking.runs import TAG_UNDEFINED
from raypath.train.evaluation import evaluate_predictions

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]  # two epochs on two workers, validated


def test_finetune_validates_stops_early_and_evaluates_like_train(local_ray, ft_cohort, tmp_path, capsys):
    # No epoch can beat the first by min_delta, so patience 1 stops after the second of four epochs
    # and the first epoch's weights are the model.
    config = absolute(finetune_config(ft_cohort, tmp_path / "out", epochs=4, name="contract", robustness_k=2,
                                      distributed={"workers": 2},
                                      split={"source": "random", "train": 0.34, "val": 0.33},
                                      early_stopping={"metric": "loss", "patience": 1, "min_delta": 1e6}))
    path = tmp_path / "finetune.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    assert main(["finetune", "--config", str(path)]) == 0
    printed = capsys.readouterr().out
    epochs = [line for line in printed.splitlines() if line.startswith("epoch ")]
    assert len(epochs) == 2 and all("val/loss=" in line and "val/auc=" in line for line in epochs)
    assert "best epoch 0 of 2 (stopped early)" in printed

    states = [torch.load(p, weights_only=True) for p in (tmp_path / "out" / "runs").rglob("state.pt")]
    state = max(states, key=lambda s: s["epoch"])
    assert state["epoch"] == 1 and state["stopper"]["best_epoch"] == 0
    assert any(not torch.equal(state["best"][k], state["trained"][k]) for k in state["best"])
    data = open_data(config, Path(prepare_run(config)["plan"]))
    model = restore(config, data, state["best"])
    prediction, embeddings = predict_slides(model, data, np.arange(data.prepared.bagset.n_slides),
                                            eval_tiles=config.eval_tiles)
    expected = evaluate_predictions(prediction, embeddings, data.prepared, config=config.train_config(),
                                    seed=config.seed)

    uri = tracking_uri(config)
    client = mlflow.MlflowClient(uri)
    run = client.search_runs([client.get_experiment_by_name("raypath/contract/tiny-uni").experiment_id])[0]
    finite = {k: v for k, v in expected.metrics.items() if np.isfinite(v)}
    assert "val/n_slides" in finite and "test/auc" in finite
    for key, value in finite.items():  # the final step: the best epoch's model, evaluated
        assert run.data.metrics[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
    assert run.data.metrics["best_epoch"] == 0
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val/loss")] == [0, 1]
    undefined = {k.removeprefix(TAG_UNDEFINED): v for k, v in run.data.tags.items()
                 if k.startswith(TAG_UNDEFINED)}
    assert undefined == expected.undefined
    for name, reason in expected.undefined.items():
        assert f"{name} undefined: {reason}" in printed
