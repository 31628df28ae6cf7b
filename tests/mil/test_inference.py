"""The one slide-inference function and decision rule: training's evaluation, the pyfunc and
`raypath predict` give the same scores and decisions for the same bag."""

import numpy as np
import pandas as pd
import pytest
import torch

from raypath.mil.inference import decide, infer_slides
from raypath.mil.robust import build_robust_mil
from raypath.packaging.network import decision, predict_bag
from raypath.packaging.spec import ModelSpec
from raypath.train.predict import prediction_table


def _model(dropout: float = 0.5):
    torch.manual_seed(0)
    return build_robust_mil(task="binary", kind="gated", in_dim=4, n_outputs=1, hidden=6, attention_dim=3,
                            dropout=dropout, weights={})


def test_inference_is_in_eval_mode_and_keeps_the_training_mode():
    model = _model().train()
    features, mask = torch.randn(2, 5, 4), torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    first = infer_slides(model, [(features, mask)])
    again = infer_slides(model, [(features[:1], mask[:1]), (features[1:], mask[1:])])
    assert model.training, "the caller's mode is restored"
    torch.testing.assert_close(first.prediction, again.prediction)  # no dropout, batching irrelevant
    assert [len(a) for a in first.attention] == [5, 3]
    assert all(a.sum() == pytest.approx(1.0, abs=1e-6) for a in first.attention)
    assert first.embedding.shape == (2, 6)
    empty = infer_slides(model, [])
    assert empty.prediction.shape == (0, 1) and empty.attention == []


def test_the_pyfunc_path_scores_a_bag_as_training_evaluation_does():
    model = _model(dropout=0.0).eval()
    features = np.random.default_rng(0).standard_normal((7, 4)).astype(np.float32)
    spec = ModelSpec(task="binary", n_outputs=1, in_dim=4, model={}, provenance={})
    scores, attention = predict_bag(model.backbone, spec, features)
    outputs = infer_slides(model, [(torch.from_numpy(features)[None], torch.ones(1, 7, dtype=torch.bool))])
    table = prediction_table(pd.DataFrame({"slide_id": ["a"]}), outputs.prediction, task="binary",
                             threshold=0.5)
    assert scores[0] == pytest.approx(float(table["score"].iloc[0]), abs=0)
    assert decision(spec, scores) == int(table["decision"].iloc[0])
    np.testing.assert_allclose(attention, outputs.attention[0] * 7, rtol=1e-6)


def test_one_decision_rule_for_every_task():
    assert decide("binary", np.array([0.2, 0.5, 0.7]), threshold=0.5, risk_cut=None).tolist() == [0, 1, 1]
    assert decide("multiclass", np.array([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]]), threshold=0.5,
                  risk_cut=None).tolist() == [1, 0]
    assert decide("survival", np.array([-1.0, 0.5, 2.0]), threshold=0.5, risk_cut=0.5).tolist() == [0, 1, 1]
    with pytest.raises(ValueError, match="risk cut"):
        decide("survival", np.array([1.0]), threshold=0.5, risk_cut=None)
    survival = prediction_table(pd.DataFrame({"slide_id": list("abc")}), torch.tensor([[-1.0], [0.5], [2.0]]),
                                task="survival", threshold=0.5)  # no cut given: the median of these risks
    assert survival["decision"].tolist() == [0, 1, 1]
