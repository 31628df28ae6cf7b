"""Bags for tests: a feature store's slides read whole, and bags packed into one BagSet in memory.

The product never holds a cohort's bags in memory at once (training reads the node-local cache,
`raypath.mil.cache`; inference reads one slide at a time); tests compare against these small,
plain readings of the store.
"""

import json
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from raypath.mil.bags import IDENTITY_COLUMNS, BagSet
from raypath.store import METADATA_KEY, Bag, FeatureStore, ProvenanceError, check_provenance


def read_metadata(path: str) -> dict[str, Any]:
    """The raypath provenance stored in a (local) feature file's footer."""
    raw = pq.read_schema(path).metadata or {}
    if METADATA_KEY not in raw:
        raise ProvenanceError(f"{path} has no raypath metadata; not a raypath feature file")
    return json.loads(raw[METADATA_KEY])


def read_bags(store: FeatureStore, slide_ids: Iterable[str] | None = None) -> list[Bag]:
    """Several slides' bags (all by default); raises ProvenanceError if their provenance differs."""
    bags = [store.read_bag(s) for s in (store.slide_ids() if slide_ids is None else slide_ids)]
    check_provenance([b.metadata for b in bags], where=store.directory)
    return bags


def bagset_from_bags(bags: Sequence[Bag], *, dtype: type = np.float32) -> BagSet:
    """Pack bags into one array; slides sorted by specimen then scanner; empty bags dropped."""
    kept = [b for b in bags if len(b.features)]
    if not kept:
        raise ValueError("no bags with tiles to pack")
    if any(b.metadata for b in kept):  # store bags carry provenance: never pack two FM versions together
        check_provenance([b.metadata for b in kept], where="the bags to pack")
    kept = sorted(kept, key=lambda b: (b.specimen_id, b.scanner, b.slide_id))
    offsets = np.r_[0, np.cumsum([len(b.features) for b in kept])].astype(np.int64)
    slides = pd.DataFrame([{c: getattr(b, c) for c in IDENTITY_COLUMNS} for b in kept])
    slides["extent_l0"] = [b.extent_l0 for b in kept]
    return BagSet(features=np.concatenate([b.features for b in kept]).astype(dtype, copy=False),
                  offsets=offsets, slides=slides,
                  coords=np.concatenate([b.coords for b in kept]).astype(np.int64, copy=False))
