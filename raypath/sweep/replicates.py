"""Replicates of the baseline and the selected robust configurations: seeds or cross-validation folds.

A pack holds configurations that share a replicate (seed, and fold in `folds` mode) and every pack
key, so within a replicate the baseline and the robust models see the same split, initial backbone
and batches (a paired comparison). In `seeds` mode replicates differ in initialisation and batch
order on one fixed patient split; in `folds` mode each replicate tests on another fold of a
patient-level stratified k-fold split. The spread over replicates is what the intervals report.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from raypath.sweep.packing import make_member


def _chunks(items: list, size: int) -> list[list]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def replicate_units(*, mode: str, count: int, base_seed: int) -> list[tuple[int, dict[str, Any]]]:
    """(seed, train-config overrides) of each replicate: new seeds, or one per cross-validation fold."""
    if mode == "folds":
        return [(base_seed + 1 + f, {"split.source": "folds", "split.folds": count, "split.fold": f})
                for f in range(count)]
    return [(base_seed + 1 + r, {}) for r in range(count)]


def replicate_packs(
    *,
    configs: Sequence[Mapping[str, Any]],
    units: Sequence[tuple[int, Mapping[str, Any]]],
    pack_keys: Sequence[str],
    pack_size: int,
    sweep_id: str,
    fm: str,
    robust_keys: Sequence[str],
) -> list[dict[str, Any]]:
    """Grid of packs {"phase": "replicates", "pack": [...]} covering every config x replicate once."""
    packs, index = [], 0
    for seed, overrides in units:
        groups: dict[tuple, list[Mapping[str, Any]]] = {}
        for params in configs:
            groups.setdefault(tuple(repr(params.get(k)) for k in pack_keys), []).append(params)
        for group in groups.values():
            for chunk in _chunks(group, pack_size):
                members = []
                for params in chunk:
                    members.append(
                        make_member(
                            params=params,
                            seed=seed,
                            index=index,
                            phase="replicates",
                            sweep_id=sweep_id,
                            fm=fm,
                            robust_keys=robust_keys,
                            overrides=overrides,
                        )
                    )
                    index += 1
                packs.append({"phase": "replicates", "pack": members})
    return packs
