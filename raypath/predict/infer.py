"""Per-slide inference as a Ray Data map: each actor holds the model once and reads a slide's
features from the store, so prediction spreads over a cluster like extraction does."""

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raypath.packaging.network import load_backbone, predict_bag
from raypath.packaging.pyfunc import slide_row
from raypath.packaging.spec import ModelSpec
from raypath.store import FeatureStore


class SlidePredictor:
    """Ray Data actor: the model is shipped as its spec and weight bytes (no shared disk needed)."""

    def __init__(self, *, spec: dict[str, Any], weights: bytes, store: tuple[str, str, str]) -> None:
        self.spec = ModelSpec.model_validate(spec)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.safetensors"
            path.write_bytes(weights)
            self.backbone = load_backbone(self.spec, path)
        root, encoder, tiling_hash = store
        self.store = FeatureStore(root, encoder=encoder, tiling_hash=tiling_hash)

    def __call__(self, batch: dict[str, np.ndarray]) -> pd.DataFrame:
        rows = []
        for slide_id in batch["slide_id"]:
            bag = self.store.read_bag(str(slide_id))
            scores, attention = predict_bag(self.backbone, self.spec, bag.features)
            row = slide_row(str(slide_id), self.spec, scores, attention)
            rows.append({**row, "tiles": len(bag.features)})
        return pd.DataFrame(rows)
