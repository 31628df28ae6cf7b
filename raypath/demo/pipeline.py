"""`raypath demo`: synth → register → extract → sweep → compare on this machine, rerunnable.

Every stage skips what is already done (synth keeps written slides, extraction resumes per slide,
the sweep restores its Tune experiment), so a second run only re-renders the comparison.
"""

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
from pydantic import BaseModel

from raypath.compare.config import CompareConfig
from raypath.config import overlay, validate_section
from raypath.demo.config import DemoConfig
from raypath.extract.config import ExtractConfig
from raypath.slides.registration.config import RegisterConfig
from raypath.sweep.config import SweepConfig
from raypath.tracking.experiments import UI_TRAINING_VIEW

log = logging.getLogger(__name__)
Stage = TypeVar("Stage", bound=BaseModel)


@dataclass(frozen=True)
class DemoPlan:
    """The validated config of every stage, wired output → input under one directory."""

    cohort: Path
    config: DemoConfig
    register: RegisterConfig
    extract: ExtractConfig
    sweep: SweepConfig
    compare: CompareConfig


def plan_demo(config: DemoConfig, *, source: str) -> DemoPlan:
    """Build and validate every stage's config up front, so a typo fails before minutes of work."""
    out = config.out.resolve()
    cohort = out / "cohort"
    manifest, labels = cohort / "manifest.csv", cohort / "labels.csv"
    registration = cohort / "registration.parquet"
    ray = {"ray": config.ray.model_dump(mode="json", exclude_unset=True)}
    register = _stage_config(RegisterConfig, ray, config, "registration", source=source,
                             joins={"manifest": manifest, "out": registration})
    extract = _stage_config(ExtractConfig, ray, config, "extract", source=source,
                            joins={"manifest": manifest, "output": str(out / "features"),
                                   "registration": registration})
    fms = [spec.name for spec in extract.encoders]
    sweep_defaults = {"sweep_id": "demo", "output_dir": out / "runs",
                      "features": {"root": str(out / "features"), "fms": fms, "labels": labels,
                                   "registration": registration, "tiling_hash": extract.tiling.cache_key()},
                      "train": {"split": {"source": "column"}}, **ray}
    sweep = _stage_config(SweepConfig, sweep_defaults, config, "sweep", source=source)
    compare_defaults = {"sweep_id": sweep.sweep_id, "output_dir": sweep.output_dir, "out": out / "report",
                        "heatmaps": {"manifest": manifest}}
    compare = _stage_config(CompareConfig, compare_defaults, config, "compare", source=source)
    return DemoPlan(cohort=cohort, config=config, register=register, extract=extract, sweep=sweep,
                    compare=compare)


def _stage_config(model: type[Stage], defaults: dict[str, Any], config: DemoConfig, name: str, *, source: str,
                  joins: dict[str, Any] | None = None) -> Stage:
    """Section `name` of the demo config: the demo's defaults, the user's section set over them as `--set`
    sets keys, and the paths that join the stages last (they are not the user's to change)."""
    where = f"{source} section '{name}'"
    data = overlay(defaults, getattr(config, name), source=where)
    return validate_section(model, {**data, **(joins or {})}, source=where)


def _registration_current(registration: Path, *, manifest: Path) -> bool:
    """Reuse registration.parquet when it covers exactly the manifest's slides (synth rewrites the
    manifest on every run, so its modification time says nothing)."""
    if not registration.exists():
        return False
    registered = set(pd.read_parquet(registration, columns=["slide_id"])["slide_id"])
    return registered == set(pd.read_csv(manifest, usecols=["slide_id"], dtype=str)["slide_id"])


def _stage(number: int, title: str) -> None:
    log.info("[%d/5] %s", number, title)


def run_demo(plan: DemoPlan) -> int:
    """Run the stages in order; returns the exit code (non-zero only if a stage could not finish)."""
    from raypath.cluster import connect
    from raypath.compare.run import compare_sweep
    from raypath.extract.run import run_extraction
    from raypath.register.run import run_registration
    from raypath.slides.synth import write_cohort
    from raypath.sweep.driver import run_sweep

    _stage(1, f"synthetic multi-scanner cohort -> {plan.cohort}")
    write_cohort(plan.config.synth, plan.cohort)
    # One Ray instance for every stage (each stage's own `connect` then joins it): a second start
    # cost the sweep tens of seconds. Workers' output stays out of the console, as in `raypath sweep`.
    connect(plan.register.ray_address, log_to_driver=False, settings=plan.register.ray)
    _stage(2, f"registration of each specimen's scans -> {plan.register.out}")
    if _registration_current(plan.register.out, manifest=plan.register.manifest):
        log.info("registration is up to date; reusing %s", plan.register.out)
    else:
        run_registration(plan.register)
    _stage(3, f"feature extraction with {[e.name for e in plan.extract.encoders]} -> {plan.extract.output}")
    summary = run_extraction(plan.extract)
    if summary.failed:
        log.warning("%d slides failed extraction; the demo continues with the others", summary.failed)
    _stage(4, f"Tune sweep '{plan.sweep.sweep_id}' over robustness-loss weights -> {plan.sweep.output_dir}")
    run_sweep(plan.sweep)
    _stage(5, f"comparison of baseline and robust models -> {plan.compare.report_dir()}")
    results = compare_sweep(plan.compare)
    _print_outcome(plan, results)
    return 0


def _print_outcome(plan: DemoPlan, results: list) -> None:
    """The demo's last words: the table, where the report is, and how to browse the runs."""
    from raypath.compare.report import to_markdown

    write = sys.stdout.write
    for result in results:
        write(f"\n## {result.fm}: baseline vs best robust configuration (test split)\n\n")
        write(to_markdown(result.wide) + "\n")
        for note in result.section.caveats if result.section else []:
            write(f"  {note}\n")
        for image in result.images:
            write(f"  plot: {plan.compare.report_dir() / result.fm / image}\n")
    report = plan.compare.report_dir()
    write(f"\nreport:   {report / 'report.html'}\n          {report / 'report.md'}\n")
    write(f"MLflow UI: mlflow ui --backend-store-uri {plan.sweep.tracking_uri()} --port 5000\n"
          f"           (then open http://127.0.0.1:5000/#/experiments?{UI_TRAINING_VIEW})\n")
    for result in results:
        if result.registered is None:
            continue
        name = f"raypath-{plan.sweep.sweep_id}-{result.fm}"
        out = plan.config.out.resolve() / "predictions"
        write(f"\npredict with the champion {result.fm} model (version {result.registered}) on new slides:\n"
              f"  raypath predict --model models:/{name}@champion \\\n"
              f"    --tracking-uri {plan.sweep.tracking_uri()} \\\n"
              f"    --manifest {plan.register.manifest} --features {plan.extract.output} \\\n"
              f"    --out {out} --heatmap-top 2\n")
