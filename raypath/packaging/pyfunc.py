"""The MLflow pyfunc of a trained MIL model: tile features of slides in, per-slide scores out.

Input: a DataFrame with one row per tile, columns `slide_id` and `features` (a list of the FM's
embedding dimension; the FM, weights and tiling the model expects are in `model.json` and in the
registered version's tags). Output: one row per slide, in order of first appearance: `score`
(probability of the positive class, the top class's probability, or the risk), `decision`,
`prob_<c>` for multiclass, and `attention` (one weight per input tile of the slide, relative to
uniform; NaN for tiles left out when the model evaluates at most `eval_max_tiles`).

A finetuned model (`kind: finetuned`) takes tile *images* instead of features: `slide_id` and `image`
(raw RGB bytes of one tile_px x tile_px tile, read at the model's tiling); it embeds them with its
base FM + adapter, then predicts the same way.
"""

import mlflow
import numpy as np
import pandas as pd

from raypath.packaging.adapted import embed_frame, load_encoder
from raypath.packaging.network import decision, load_backbone, predict_bag
from raypath.packaging.spec import ModelSpec


def predict_frame(backbone, spec: ModelSpec, tiles: pd.DataFrame) -> pd.DataFrame:
    """Per-slide predictions of a tile table (see the module docstring)."""
    missing = {"slide_id", "features"} - set(tiles.columns)
    if missing:
        raise ValueError(f"input lacks columns {sorted(missing)}; expected one row per tile with "
                         "'slide_id' and 'features'")
    rows = []
    for slide_id, group in tiles.groupby("slide_id", sort=False):
        features = np.stack([np.asarray(f, dtype=np.float32) for f in group["features"]])
        scores, attention = predict_bag(backbone, spec, features)
        rows.append(slide_row(str(slide_id), spec, scores, attention))
    return pd.DataFrame(rows)


def slide_row(slide_id: str, spec: ModelSpec, scores: np.ndarray, attention: np.ndarray) -> dict:
    """One output row: score, decision, class probabilities (multiclass) and attention."""
    row = {"slide_id": slide_id, "score": float(scores.max() if spec.task == "multiclass" else scores[0]),
           "decision": decision(spec, scores)}
    if spec.task == "multiclass":
        row.update({f"prob_{c}": float(p) for c, p in enumerate(scores)})
    row["attention"] = attention.astype(float).tolist()
    return row


class MILPyfunc(mlflow.pyfunc.PythonModel):
    """Loads `model.json` and the safetensors weights; no pickle is involved anywhere."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.spec = ModelSpec.read(context.artifacts["spec"])
        self.backbone = load_backbone(self.spec, context.artifacts["weights"])
        self.encoder = (load_encoder(self.spec, context.artifacts["adapter"]) if self.spec.kind == "finetuned"
                        else None)

    def predict(self, context: mlflow.pyfunc.PythonModelContext, model_input: pd.DataFrame,
                params: dict | None = None) -> pd.DataFrame:
        if self.encoder is not None:
            model_input = embed_frame(self.encoder, self.spec, model_input)
        return predict_frame(self.backbone, self.spec, model_input)
