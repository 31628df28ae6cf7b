"""Seed replicates of the baseline and the selected robust configurations, packed by seed.

A pack holds configurations that share a seed and every pack key, so within a seed the baseline
and the robust models see the same split, initial backbone and batches (a paired comparison), and
across seeds everything varies: the spread over seeds is what the confidence intervals report.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from raypath.sweep.packing import make_member


def _chunks(items: list, size: int) -> list[list]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def replicate_packs(
    *,
    configs: Sequence[Mapping[str, Any]],
    seeds: Sequence[int],
    pack_keys: Sequence[str],
    pack_size: int,
    sweep_id: str,
    fm: str,
    robust_keys: Sequence[str],
) -> list[dict[str, Any]]:
    """Grid of packs {"phase": "replicates", "pack": [...]} covering every config x seed once."""
    packs, index = [], 0
    for seed in seeds:
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
                        )
                    )
                    index += 1
                packs.append({"phase": "replicates", "pack": members})
    return packs
