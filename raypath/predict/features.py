"""The features a model expects for the slides to predict: reused when a store has them from the same
FM weights and tiling, extracted with the same job and settings otherwise, refused when they differ.

A finetuned model's features come from its base FM + adapter: the same extraction job reads and
tiles the slides and embeds the tiles with the adapted encoder (built in each actor from the spec
and the adapter bytes), into a store directory named after base FM and adapter."""

import logging

import pandas as pd

from raypath.extract.config import ExtractConfig
from raypath.extract.encoders import describe_encoders
from raypath.extract.run import run_extraction
from raypath.packaging.adapted import encoder_factory
from raypath.packaging.spec import ModelSpec
from raypath.predict.config import PredictConfig
from raypath.slides.config import TilingConfig
from raypath.store import FeatureStore, ProvenanceError

log = logging.getLogger(__name__)


def model_store(spec: ModelSpec, *, root: str) -> FeatureStore:
    """Where the model's FM and tiling (on each slide's own grid) keep features under `root`."""
    provenance = spec.prediction_provenance()
    return FeatureStore(root, encoder=provenance["encoder"], tiling_hash=provenance["tiling_hash"])


def check_features(spec: ModelSpec, store: FeatureStore, slide_ids: list[str]) -> None:
    """Refuse features written by other FM weights, tiling or dimension, naming the difference."""
    for entry in store.slide_entries(slide_ids):
        difference = spec.feature_mismatch(entry.metadata)
        if difference:
            raise ProvenanceError(
                f"{store.slide_path(entry.slide_id)} was not made the way the model's features were: "
                + ", ".join(f"{k} is {f!r}, the model expects {m!r}" for k, (m, f) in difference.items()))


def extraction_config(spec: ModelSpec, config: PredictConfig) -> ExtractConfig:
    """The extraction job, set up as the model's training features were made."""
    tiling = TilingConfig.model_validate(spec.prediction_provenance()["tiling"])
    return ExtractConfig.model_validate({
        **config.extract, "manifest": config.manifest, "output": config.feature_root(),
        "encoders": [{"name": spec.provenance["encoder"], "checkpoint": config.checkpoint}],
        "tiling": tiling.model_dump(), "ray_address": config.ray_address})


def ensure_features(spec: ModelSpec, config: PredictConfig, manifest: pd.DataFrame, *,
                    adapter: bytes | None = None) -> FeatureStore:
    """The store holding every predictable slide's features (missing ones extracted first); a
    finetuned model's are embedded with its base FM + `adapter` (the adapter file's bytes)."""
    store = model_store(spec, root=config.feature_root())
    wanted = manifest["slide_id"].astype(str).tolist()
    present = set(store.slide_ids())
    check_features(spec, store, [s for s in wanted if s in present])
    missing = [s for s in wanted if s not in present]
    if missing:
        log.info("%d of %d slides lack %s features: extracting them", len(missing), len(wanted),
                 store.encoder)
        extract = extraction_config(spec, config)
        factories = None
        if spec.kind == "finetuned":
            if adapter is None:
                raise ValueError("a finetuned model needs its adapter to embed tiles")
            factory = encoder_factory(spec, adapter, checkpoint=config.checkpoint)
            factories = {spec.provenance["encoder"]: factory}
        (encoder,) = describe_encoders(extract, factories=factories)
        difference = spec.feature_mismatch(encoder.metadata)
        if difference:
            raise ProvenanceError(f"extracting with {extract.encoders[0]} would not reproduce the model's "
                                  f"features: {difference} (model's, this encoder's)")
        run_extraction(extract, factories=factories)
    return store
