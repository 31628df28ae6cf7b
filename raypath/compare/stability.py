"""How stable a comparison's choice is: the chosen configurations next to their runner-ups.

A choice between near-tied configurations can move with float-level differences (another CPU,
another BLAS). The report therefore shows, for the baseline and for the robust pick, the
configurations ranked right behind it with their validation metrics and their gap to the pick, and
says whether the pick was decided by a margin, by the tie rule, or sits at the accuracy floor.
"""

import numpy as np
import pandas as pd

from raypath.sweep.selection import Selection, loss_weight_sum

RUNNER_UPS = 2


def _weights(params: dict) -> str:
    weights = {k.removeprefix("losses."): round(float(v), 3) for k, v in sorted(params.items())
               if k.startswith("losses.") and k != "losses.tau"}
    return ", ".join(f"{k} {v:g}" for k, v in weights.items()) or "-"


def _row(role: str, row: pd.Series, chosen: pd.Series, selection: Selection, note: str) -> dict:
    cells = {"choice": role, "config": str(row["config_key"])[:8], "loss weights": _weights(row["params"])}
    for metric in (selection.accuracy, selection.robustness):
        gap = float(row[metric]) - float(chosen[metric])
        cells[metric] = f"{float(row[metric]):.4f}" + (f" ({gap:+.4f})" if role != "chosen" else "")
    return {**cells, "note": note}


def _note(row: pd.Series, chosen: pd.Series, *, metric: str, selection: Selection, robust: bool) -> str:
    notes = []
    tied = abs(float(row[metric]) - float(chosen[metric])) <= selection.tie
    if tied and row["config_key"] != chosen["config_key"]:
        weights = (loss_weight_sum(row["params"]), loss_weight_sum(chosen["params"]))
        rule = "lower loss-weight sum" if weights[0] != weights[1] else "config key"
        notes.append(f"tied with the pick within {selection.tie:g} on {metric}: decided by the {rule}")
    if robust and np.isfinite(selection.floor):
        margin = float(row[selection.accuracy]) - selection.floor
        if abs(margin) <= selection.tie:
            notes.append(f"at the accuracy floor ({margin:+.4f}): marginal")
        elif margin < 0:
            notes.append("below the accuracy floor")
    return "; ".join(notes)


def _block(title: str, ranked: pd.DataFrame, *, selection: Selection, metric: str, robust: bool,
           shown: int) -> list[dict]:
    if ranked.empty:
        return []
    chosen, rows = ranked.iloc[0], []
    for rank, (_, row) in enumerate(ranked.head(shown).iterrows()):
        role = "chosen" if rank == 0 else f"runner-up {rank}"
        note = _note(row, chosen, metric=metric, selection=selection, robust=robust)
        rows.append({**_row(role, row, chosen, selection, note), "choice": f"{title} {role}"})
    return rows


def stability_table(selection: Selection, *, top_k: int = 1) -> pd.DataFrame:
    """Baseline and robust picks with their runner-ups: metrics, gaps to the pick, tie and floor notes."""
    columns = ["choice", "config", "loss weights", selection.accuracy, selection.robustness, "note"]
    baseline = _block("baseline", selection.baselines, selection=selection, metric=selection.accuracy,
                      robust=False, shown=1 + RUNNER_UPS)
    robust = _block("robust", selection.ranked, selection=selection, metric=selection.robustness, robust=True,
                    shown=top_k + RUNNER_UPS)
    return pd.DataFrame(baseline + robust, columns=columns).set_index("choice")


def stability_note(selection: Selection) -> str:
    """One sentence: by how much each pick leads its runner-up on the metric it was chosen by."""
    parts = []
    for name, ranked, metric in (("baseline", selection.baselines, selection.accuracy),
                                 ("robust", selection.ranked, selection.robustness)):
        if len(ranked) < 2:
            continue
        gap = abs(float(ranked.iloc[1][metric]) - float(ranked.iloc[0][metric]))
        verdict = ("a tie, decided by the tie rule" if gap <= selection.tie
                   else f"{gap / selection.tie:.0f}x the tie tolerance" if selection.tie else "")
        parts.append(f"the {name} pick leads its runner-up by {gap:.4f} on {metric} ({verdict})")
    if not parts:
        return "Choice stability: no runner-up to compare with."
    return "Choice stability: " + "; ".join(parts) + " (runner-ups below the table)."
