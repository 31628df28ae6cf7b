"""Run every benchmark (or only assemble) and write benchmarks/RESULTS.md from the sections.

Each `bench_<name>.py` writes `benchmarks/results/<name>.md` with its command and machine;
this script concatenates them in a fixed order so RESULTS.md is never edited by hand.
"""

import argparse
import logging
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
ORDER = ["tiling", "registration", "extract", "mil_throughput", "peers", "cache_formats", "scale",
         "scale_out_of_core", "data_parallel", "robust_mil", "sweep", "evaluate_fm", "fm_robustness",
         "finetune", "finetune_robustness", "demo", "gpu_check"]
log = logging.getLogger("benchmarks")


def run_benchmarks(names: list[str], *, quick: bool) -> None:
    """Run each named benchmark script in its own process so one failure does not stop the rest."""
    for name in names:
        script = HERE / f"bench_{name}.py"
        if not script.exists():
            continue
        command = [sys.executable, str(script), *(["--quick"] if quick else [])]
        log.info("running %s", " ".join(command))
        result = subprocess.run(command, check=False)
        if result.returncode:
            log.error("%s exited with %d", script.name, result.returncode)


def assemble() -> Path:
    """Concatenate the per-benchmark sections into RESULTS.md."""
    sections = [HERE / "results" / f"{name}.md" for name in ORDER]
    extra = sorted(set((HERE / "results").glob("*.md")) - set(sections))
    parts = ["# raypath benchmark results\n",
             "Every number below was measured by the command shown in its section; "
             "`python benchmarks/run_all.py --assemble-only` rebuilds this file.\n",
             "GPU figures (FM inference from slides vs the bare forward, ViT-L/16 bf16; GPU vs CPU "
             "JPEG decoding; LoRA fine-tuning tiles/s per GPU) come from one prepared run of "
             "`bash benchmarks/gpu_check.sh` (at most 8 minutes; its section is added below when a "
             "session is lent a GPU machine); none was lent to the sessions that produced the numbers "
             "below.\n"]
    parts += [path.read_text().strip() + "\n" for path in [*sections, *extra] if path.exists()]
    target = HERE / "RESULTS.md"
    target.write_text("\n".join(parts))
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=ORDER, help="benchmarks to run")
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the scripts")
    parser.add_argument("--assemble-only", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if not args.assemble_only:
        run_benchmarks(args.only, quick=args.quick)
    log.info("wrote %s", assemble())
    return 0


if __name__ == "__main__":
    sys.exit(main())
