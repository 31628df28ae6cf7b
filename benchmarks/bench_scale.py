"""Cohort-scale sweeps: cost against cohort size, up to a feature store larger than the machine's RAM.

For each size: a simulated store is written (float32 Parquet, streamed), the disk's own sequential
read rate is measured (O_DIRECT, bypassing the page cache), then a 16-configuration sweep runs in a
fresh driver process with `max_tiles` sampling, reading through the node-local float16 cache.
Reported per size: cache build time, driver and per-trial peak RSS (and the trial's anonymous part,
the page cache aside), seconds per epoch, bags/s, disk read MB/s during the sweep against the disk's
sequential rate, and object-store spilling; then a linear fit of seconds per epoch against tiles
read per epoch.

Out of core (`--out-of-core-slides`, its own section): one trial's work (a pack of 8 configurations,
1 thread) on a cache that does not fit the memory it may use. The same child trains from a warm
page cache (the in-memory path), from a cold one, and from a cold one inside a memory cgroup of
2/3 of the cache's size (cgroup v1, root needed); per epoch it reports seconds and the bytes its
process read from disk (/proc/<pid>/io) against the bytes its sampled tiles hold. The cache file's
own pages are evicted between runs (POSIX_FADV_DONTNEED), nothing else's. `--before DIR` repeats
the limited run with the raypath package found in DIR (e.g. an older commit's tree), on its own
cache: the layout before and after, same store, same run.

    .venv/bin/python benchmarks/bench_scale.py                      # 300, 1200, 2400 slides x 4000 x 1024
    .venv/bin/python benchmarks/bench_scale.py --quick              # 3 tiny sizes, minutes
    .venv/bin/python benchmarks/bench_scale.py --work /big/disk/dir # where stores and caches go
    .venv/bin/python benchmarks/bench_scale.py --sizes '' --out-of-core-slides 800 --before /tmp/old

Writes benchmarks/results/scale.md and benchmarks/results/scale_out_of_core.md. Needs free disk of
about 1.5x the largest store.
"""

import argparse
import json
import logging
import mmap
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from machine import header, write_section
from memory_limit import (
    cgroup_available,
    core_wait_s,
    drop_file_cache,
    group_stats,
    io_wait_s,
    joiner,
    memory_group,
    read_bytes,
    warm_file_cache,
)

log = logging.getLogger("bench_scale")
RESULTS = Path(__file__).resolve().parent / "results" / "scale.md"
OUT_OF_CORE = RESULTS.with_name("scale_out_of_core.md")
SPACE = {
    "optimizer.lr": {"type": "loguniform", "low": 1e-4, "high": 3e-3},
    "losses.infonce": {"type": "uniform", "low": 0.0, "high": 1.0},
    "losses.score_consistency": {"type": "uniform", "low": 0.0, "high": 5.0},
}


def simulate(args: argparse.Namespace, slides: int, out: Path) -> dict:
    from raypath.simulate.config import SimulateConfig
    from raypath.simulate.store import write_feature_cohort

    config = SimulateConfig(n_specimens=slides // 2, scanners=["A", "B"], tiles=args.tiles, dim=args.dim,
                            seed=0)
    started = time.perf_counter()
    store = write_feature_cohort(config, out=out)
    size = sum(p.stat().st_size for p in Path(store.directory).glob("*.parquet"))
    return {"store_gb": size / 1e9, "write_s": time.perf_counter() - started, "encoder": config.encoder}


def sequential_read_mb_s(path: Path, *, limit: int = 2 << 30, block: int = 16 << 20) -> float:
    """The disk's own sequential read rate: O_DIRECT reads of `path`, the page cache bypassed."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    buffer = mmap.mmap(-1, block)  # page-aligned, as O_DIRECT needs
    try:
        done, started = 0, time.perf_counter()
        while done < limit:
            count = os.readv(fd, [buffer])
            if count <= 0:
                break
            done += count
        return done / 1e6 / (time.perf_counter() - started)
    finally:
        os.close(fd)
        buffer.close()


def disk_read_bytes(path: Path) -> int:
    """Bytes read so far from the block device that holds `path` (/proc/diskstats)."""
    device = os.stat(path).st_dev
    major, minor = os.major(device), os.minor(device)
    for line in Path("/proc/diskstats").read_text().splitlines():
        fields = line.split()
        if int(fields[0]) == major and int(fields[1]) == minor:
            return int(fields[5]) * 512
    # an overlay or partition-less mount: fall back to the first whole disk
    first = Path("/proc/diskstats").read_text().splitlines()[0].split()
    return int(first[5]) * 512


def sweep_config(args: argparse.Namespace, *, cohort: Path, out: Path, encoder: str) -> dict:
    return {
        "sweep_id": "scale", "output_dir": str(out),
        "features": {"root": str(cohort / "features"), "fms": [encoder], "labels": str(cohort / "labels.csv"),
                     "splits": str(cohort / "splits.csv"),
                     "cache": {"dir": str(out / "cache"), "storage": "float16"}},
        "train": {"epochs": args.epochs, "batch_specimens": 16, "max_tiles": args.max_tiles,
                  "eval_max_tiles": args.max_tiles, "early_stopping": {"enabled": False},
                  "model": {"hidden": 128, "attention_dim": 64, "projection_dim": 64, "dropout": 0.0}},
        "space": SPACE, "num_samples": args.configs, "pack_size": 8, "sampler": "random",
        "objectives": [{"metric": "val/auc", "mode": "max"}], "asha": {"enabled": False},
        "resources": {"cpus_per_trial": 1, "max_concurrent_trials": 2}, "replicates": {"seeds": 0},
    }


def run_driver(config: dict) -> dict:
    """The sweep in this process (the child): driver peak RSS, spilled bytes, Tune's results."""
    import ray
    from ray._private.internal_api import memory_summary

    from raypath.cluster import connect
    from raypath.sweep.config import SweepConfig
    from raypath.sweep.driver import run_sweep

    connect(None, num_cpus=2, log_to_driver=False)
    (outcome,) = run_sweep(SweepConfig.model_validate(config))
    summary = memory_summary(address=ray.get_runtime_context().gcs_address, stats_only=True)  # ours only
    spilled = [line for line in summary.splitlines() if "Spilled" in line]
    return {"wall_s": outcome.wall_s, "startup_s": outcome.startup_s, "path": outcome.path,
            "spilled": spilled[0].strip() if spilled else "no spilling reported"}


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_child(arguments: list[str], *, group: Path | None = None,
              code: Path | None = None) -> tuple[dict, float]:
    """Run this script as a child with `arguments` (inside memory `group`, importing raypath from
    `code` first if given); its JSON answer and its peak RSS (polled)."""
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(code), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    child = subprocess.Popen([sys.executable, __file__, *arguments], stdout=subprocess.PIPE, text=True,
                             env=env, preexec_fn=joiner(group))
    peak = [0.0]

    def poll() -> None:
        while child.poll() is None:
            try:
                peak[0] = max(peak[0], peak_rss_mb(child.pid))
            except (OSError, ValueError):
                break
            time.sleep(0.5)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    output, _ = child.communicate()
    watcher.join()
    if child.returncode:
        raise RuntimeError(f"child {arguments[:2]} exited with {child.returncode}")
    return json.loads(output.strip().splitlines()[-1]), peak[0]


def build_cache(cohort: Path, cache: Path, encoder: str) -> dict:
    """The child that builds the node cache (timed) exactly as the first trial on a node would."""
    from raypath.mil.cache import open_cache
    from raypath.store import FeatureStore, tiling_hashes

    root = cohort / "features"
    store = FeatureStore(root, encoder=encoder, tiling_hash=tiling_hashes(root, encoder=encoder)[0])
    started = time.perf_counter()
    bags = open_cache(store, root=cache, storage="float16")
    return {"build_s": time.perf_counter() - started, "tiles": int(bags.offsets[-1]), "slides": bags.n_slides}


def trial_stats(experiment: Path) -> dict:
    """Per-trial peak/anon RSS, median s/epoch and trained bags from Tune's result.json files."""
    peaks, anon, epoch_s = [], [], []
    for result in experiment.glob("pack_*/result.json"):
        rows = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        final = [r for r in rows if r.get("final")]
        epoch_s += [r["time_this_iter_s"] for r in rows if not r.get("final")][1:]  # first epoch warms up
        if final and "memory" in final[-1]:
            peaks.append(final[-1]["memory"]["peak_rss_mb"])
            anon.append(final[-1]["memory"].get("rss_anon_mb", float("nan")))
    return {"trial_peak_mb": max(peaks), "trial_anon_mb": max(anon), "s_per_epoch": float(np.median(epoch_s))}


def measure(args: argparse.Namespace, slides: int, work: Path) -> dict:
    cohort, out = work / f"cohort-{slides}", work / f"sweep-{slides}"
    shutil.rmtree(out, ignore_errors=True)
    row = {"slides": slides, **simulate(args, slides, cohort)}
    log.info("%d slides: store %.1f GB written in %.0f s", slides, row["store_gb"], row["write_s"])
    cache = out / "cache"
    built, row["build_peak_mb"] = run_child(["--build-cache", str(cohort), str(cache), row["encoder"]])
    row.update(built)
    log.info("%d slides: cache built in %.0f s (peak RSS %.0f MB)", slides, row["build_s"],
             row["build_peak_mb"])
    (features,) = cache.rglob("features.npy")
    row["disk_seq_mb_s"] = sequential_read_mb_s(features,
                                                limit=min(2 << 30, features.stat().st_size // 4096 * 4096))
    before, started = disk_read_bytes(work), time.perf_counter()
    config = sweep_config(args, cohort=cohort, out=out, encoder=row["encoder"])
    (out / "config.json").parent.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config))
    driven, row["driver_peak_mb"] = run_child(["--run-sweep", str(out / "config.json")])
    elapsed = time.perf_counter() - started
    row.update(driven)
    row["disk_read_mb_s"] = (disk_read_bytes(work) - before) / 1e6 / elapsed
    row.update(trial_stats(Path(driven["path"])))
    train_bags = int((np.loadtxt(cohort / "splits.csv", delimiter=",", dtype=str, skiprows=1)[:, 1]
                      == "train").sum()) * 2
    eval_bags = row["slides"] - train_bags
    row["tiles_per_epoch"] = (train_bags + eval_bags) * min(args.max_tiles, args.tiles)
    row["bags_per_s"] = train_bags / row["s_per_epoch"]
    log.info("%d slides: %s", slides, json.dumps(row))
    return row


def report(rows: list[dict], args: argparse.Namespace) -> str:
    x = np.array([r["tiles_per_epoch"] for r in rows], float)
    y = np.array([r["s_per_epoch"] for r in rows], float)
    slope, intercept = np.polyfit(x, y, 1)
    predicted = slope * x + intercept
    r2 = 1 - ((y - predicted) ** 2).sum() / max(((y - y.mean()) ** 2).sum(), 1e-12)
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    lines = [
        header("Cohort-scale sweeps (node-local float16 cache, max_tiles sampling)"),
        f"Simulated stores of N slides (N/2 specimens x 2 scanners) x {args.tiles} tiles x {args.dim} dims "
        f"(float32 Parquet); a {args.configs}-configuration sweep (random search, packs of 8, 2 concurrent "
        f"trials x 1 CPU, {args.epochs} epochs, {args.max_tiles} sampled tiles per bag in training and "
        f"evaluation, gated-attention MIL hidden 128). RAM {ram:.1f} GB. Driver and trials run in their own "
        "processes; RSS = resident set (the trial's mapped cache pages are file-backed page cache shared by "
        "the node; its anonymous part is what it holds alone).\n",
        "| slides | store GB (fp32) | x RAM | cache build s | build peak RSS MB | driver peak RSS MB "
        "| trial peak RSS MB | trial anon MB | s / epoch | bags/s per trial | disk read MB/s (sweep) "
        "| disk sequential MB/s | spilling |",
        "|" + "---|" * 13,
    ]
    for r in rows:
        lines.append(
            f"| {r['slides']} | {r['store_gb']:.1f} | {r['store_gb'] / ram:.2f} | {r['build_s']:.0f} | "
            f"{r['build_peak_mb']:.0f} | {r['driver_peak_mb']:.0f} | {r['trial_peak_mb']:.0f} | "
            f"{r['trial_anon_mb']:.0f} | {r['s_per_epoch']:.1f} | {r['bags_per_s']:.1f} | "
            f"{r['disk_read_mb_s']:.0f} | {r['disk_seq_mb_s']:.0f} | {r['spilled']} |")
    lines += ["", f"Seconds per epoch against tiles read per epoch: s = {slope * 1e6:.3f} x (tiles / 10^6) + "
              f"{intercept:.2f}, R^2 = {r2:.4f}.", ""]
    return "\n".join(lines)


def pack_configs(args: argparse.Namespace, *, size: int = 8, seed: int = 0) -> list[dict]:
    """A trial's pack: the sweep's train section with `size` random draws from SPACE."""
    rng = np.random.default_rng(seed)
    base = sweep_config(args, cohort=Path("."), out=Path("."), encoder="")["train"]
    pack = []
    for _ in range(size):
        lr = float(np.exp(rng.uniform(np.log(1e-4), np.log(3e-3))))
        losses = {"infonce": float(rng.uniform(0, 1)), "score_consistency": float(rng.uniform(0, 5))}
        pack.append({**base, "epochs": args.out_of_core_epochs, "split": {"source": "column"},
                     "num_threads": 1, "optimizer": {"lr": lr}, "losses": losses})
    return pack


def train_epochs(spec: dict) -> dict:
    """The child: one trial's work on the node cache; per epoch its seconds and disk bytes read."""
    import raypath
    from raypath.store import FeatureStore, tiling_hashes
    from raypath.train.config import TrainConfig
    from raypath.train.data import load_training_data
    from raypath.train.engine import PackMember, train_pack

    cohort = Path(spec["cohort"])
    root = cohort / "features"
    encoder = spec["encoder"]
    store = FeatureStore(root, encoder=encoder, tiling_hash=tiling_hashes(root, encoder=encoder)[0])
    bags = load_training_data(store=store, labels=cohort / "labels.csv", splits=cohort / "splits.csv",
                              cache_root=Path(spec["cache"]), storage="float16")
    members = [PackMember(key=f"m{i}", config=TrainConfig.model_validate(c))
               for i, c in enumerate(spec["pack"])]
    config = members[0].config
    split, lengths = bags.slides["split"].to_numpy(), bags.lengths
    rows = (np.minimum(lengths[split == "train"], config.max_tiles).sum()
            + np.minimum(lengths[split == "val"], config.eval_max_tiles).sum())

    def mark() -> tuple[float, int, float, float, float]:
        return time.perf_counter(), read_bytes(), time.process_time(), io_wait_s(), core_wait_s()

    marks = [mark()]
    train_pack(members=members, data=bags, seed=0, on_epoch=lambda epoch, reported: marks.append(mark()))
    final = mark()
    seconds, disk, cpu, wait, core_wait = (np.diff([m[i] for m in marks]) for i in range(5))
    return {"epoch_s": seconds.tolist(), "epoch_read_bytes": disk.tolist(), "epoch_cpu_s": cpu.tolist(),
            "epoch_io_wait_s": wait.tolist(), "epoch_core_wait_s": core_wait.tolist(),
            "sampled_bytes": int(rows) * bags.dim * bags.features.itemsize,
            "final_s": final[0] - marks[-1][0], "final_read_bytes": final[1] - marks[-1][1],
            "raypath": str(Path(raypath.__file__).parent), "peak_rss_mb": peak_rss_mb(os.getpid())}


def out_of_core_run(args: argparse.Namespace, *, name: str, spec: Path, features: Path, warm: bool,
                    limit: int | None, code: Path | None = None) -> dict:
    """One child run: the cache file's pages evicted (or read in, `warm`), inside a memory group
    of `limit` bytes if given."""
    drop_file_cache(features)
    if warm:
        warm_file_cache(features)
    if limit is None:
        result, peak = run_child(["--train-epochs", str(spec)], code=code)
        result["group"] = {}
    else:
        with memory_group(limit) as group:
            result, peak = run_child(["--train-epochs", str(spec)], group=group, code=code)
            result["group"] = group_stats(group)
    result.update(name=name, limit=limit, polled_peak_mb=peak)
    log.info("out of core, %s: %s", name, json.dumps(result))
    return result


def out_of_core(args: argparse.Namespace, work: Path) -> str:
    """The out-of-core section: warm, cold, and cold under a memory limit of `limit_fraction`."""
    slides = args.out_of_core_slides
    cohort, cache = work / f"cohort-ooc-{slides}", work / f"cache-ooc-{slides}"
    meta = simulate(args, slides, cohort)
    run_child(["--build-cache", str(cohort), str(cache), meta["encoder"]])
    (features,) = cache.rglob("features.npy")
    spec = work / "ooc-spec.json"
    spec.write_text(json.dumps({"cohort": str(cohort), "cache": str(cache), "encoder": meta["encoder"],
                                "pack": pack_configs(args)}))
    cache_bytes = features.stat().st_size
    limit = int(cache_bytes * args.limit_fraction) + (2 << 30 if args.quick else 0)
    common = {"spec": spec, "features": features}
    runs = [out_of_core_run(args, name="warm page cache, no limit", warm=True, limit=None, **common),
            out_of_core_run(args, name="cold, no limit", warm=False, limit=None, **common),
            out_of_core_run(args, name=f"cold, limit {args.limit_fraction:.2f} x cache", warm=False,
                            limit=limit, **common)]
    if args.before is not None:
        old_cache = work / f"cache-ooc-{slides}-before"
        run_child(["--build-cache", str(cohort), str(old_cache), meta["encoder"]], code=args.before)
        old_spec = work / "ooc-spec-before.json"
        old_spec.write_text(json.dumps({**json.loads(spec.read_text()), "cache": str(old_cache)}))
        (old_features,) = old_cache.rglob("features.npy")
        name = f"before ({args.before.name}): cold, limit {args.limit_fraction:.2f} x cache"
        runs.append(out_of_core_run(args, name=name, spec=old_spec, features=old_features, warm=False,
                                    limit=limit, code=args.before))
        if not args.keep:
            shutil.rmtree(old_cache, ignore_errors=True)
    if not args.keep:
        shutil.rmtree(cohort, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)
    return out_of_core_report(runs, args, cache_bytes=cache_bytes, store_gb=meta["store_gb"])


def _epoch_median(run: dict, key: str) -> float:
    """Median of a per-epoch series over the epochs after the first (the first alone if only one)."""
    return float(np.median(run[key][1:] or run[key]))


def _own_core_s(run: dict) -> float:
    """Median s/epoch less the main thread's wait for a core: the epoch on an otherwise idle core."""
    own = np.subtract(run["epoch_s"], run["epoch_core_wait_s"]).tolist()
    return float(np.median(own[1:] or own))


def out_of_core_report(runs: list[dict], args: argparse.Namespace, *, cache_bytes: int,
                       store_gb: float) -> str:
    baseline = _epoch_median(runs[0], "epoch_s")
    own_baseline = _own_core_s(runs[0])
    lines = [
        header("Out-of-core epochs (node-local float16 cache larger than the memory limit)"),
        f"{args.out_of_core_slides} simulated slides x {args.tiles} tiles x {args.dim} dims: store "
        f"{store_gb:.1f} GB (float32 Parquet), cache {cache_bytes / 1e9:.2f} GB (float16). One trial's "
        f"work in one process: a pack of 8 configurations (gated-attention MIL hidden 128, task + InfoNCE + "
        f"score-consistency losses, 1 torch thread), {args.out_of_core_epochs} epochs, {args.max_tiles} "
        "sampled tiles per training bag, evenly spaced ones per validation bag. 'disk read' = the process's "
        "/proc/<pid>/io read_bytes per epoch; 'sampled' = the bytes of the rows the epoch gathers (train + "
        "validation). s/epoch = median of the epochs after the first; the first epoch is also shown. CPU "
        "s/epoch = the process's CPU time (load-independent); I/O wait = its block-I/O delay (delay "
        "accounting, kernel.task_delayacct; 0 when off); core wait = the time its training thread was "
        "runnable but waiting for a core (run-queue delay, /proc/<pid>/schedstat), which other work on a "
        "shared machine causes; 'own core' = s/epoch less core wait: CPU time plus time blocked on disk "
        "reads and page faults, the epoch as it would run with a core to itself. The "
        "cache file's pages are evicted before each run (POSIX_FADV_DONTNEED; 'warm' then reads it in "
        "once); the limit is a cgroup v1 memory group the child joins before it starts, page cache "
        "included.\n",
        "| run | memory limit GB | s/epoch | first epoch s | vs warm | CPU s/epoch | I/O wait s/epoch "
        "| core wait s/epoch | own core s/epoch | own core vs warm "
        "| disk read MB/epoch | sampled MB/epoch | read / sampled | group peak GB | OOM kills "
        "| final evaluation s |",
        "|" + "---|" * 16,
    ]
    for run in runs:
        per_epoch, read = _epoch_median(run, "epoch_s"), _epoch_median(run, "epoch_read_bytes")
        cpu, wait = _epoch_median(run, "epoch_cpu_s"), _epoch_median(run, "epoch_io_wait_s")
        core_wait, own = _epoch_median(run, "epoch_core_wait_s"), _own_core_s(run)
        group, limit = run["group"], "-" if run["limit"] is None else f"{run['limit'] / 1e9:.2f}"
        lines.append(
            f"| {run['name']} | {limit} | "
            f"{per_epoch:.1f} | {run['epoch_s'][0]:.1f} | {per_epoch / baseline:.2f}x | {cpu:.1f} | "
            f"{wait:.2f} | {core_wait:.1f} | {own:.1f} | {own / own_baseline:.2f}x | {read / 1e6:.0f} | "
            f"{run['sampled_bytes'] / 1e6:.0f} | {read / run['sampled_bytes']:.2f} | "
            f"{group.get('max_usage_bytes', float('nan')) / 1e9:.2f} | {group.get('oom_kills', '-')} | "
            f"{run['final_s']:.1f} |")
    lines += ["", "Targets (issue 26): under a limit of 2/3 of the cache, s/epoch at most 1.5x the unlimited "
              "run and disk bytes read per epoch at most 2x the sampled bytes.", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=lambda s: [int(v) for v in s.split(",") if v],
                        default=[300, 1200, 2400])
    parser.add_argument("--tiles", type=int, default=4000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--configs", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-tiles", type=int, default=256)
    parser.add_argument("--work", type=Path, default=Path("runs/bench-scale"))
    parser.add_argument("--keep", action="store_true", help="keep each size's store and cache")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a check that everything runs")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--out-of-core-slides", type=int, default=800,
                        help="slides of the out-of-core run (0 = skip it)")
    parser.add_argument("--out-of-core-epochs", type=int, default=4)
    parser.add_argument("--limit-fraction", type=float, default=2 / 3, help="memory limit / cache size")
    parser.add_argument("--before", type=Path, help="a directory holding an older raypath package to compare")
    parser.add_argument("--build-cache", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--run-sweep", help=argparse.SUPPRESS)
    parser.add_argument("--train-epochs", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_cache:
        cohort, cache, encoder = args.build_cache
        print(json.dumps(build_cache(Path(cohort), Path(cache), encoder)))
        return 0
    if args.run_sweep:
        print(json.dumps(run_driver(json.loads(Path(args.run_sweep).read_text()))))
        return 0
    if args.train_epochs:
        print(json.dumps(train_epochs(json.loads(Path(args.train_epochs).read_text()))))
        return 0
    from raypath.logs import setup_logging

    setup_logging()
    if args.quick:
        args.tiles, args.dim, args.configs, args.max_tiles = 200, 64, 8, 64
        args.sizes = [40, 80, 160] if args.sizes else []
        args.out_of_core_slides, args.out_of_core_epochs = min(args.out_of_core_slides, 40), 2
    args.work = args.work.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    for slides in args.sizes:
        rows.append(measure(args, slides, args.work))
        if not args.keep:
            shutil.rmtree(args.work / f"cohort-{slides}", ignore_errors=True)
            shutil.rmtree(args.work / f"sweep-{slides}", ignore_errors=True)
    if rows:
        write_section(args.out, report(rows, args))
    missing = cgroup_available()
    if args.out_of_core_slides and missing:
        log.warning("out-of-core run skipped: %s", missing)
    elif args.out_of_core_slides:
        write_section(args.out.with_name(OUT_OF_CORE.name), out_of_core(args, args.work))
    return 0


if __name__ == "__main__":
    sys.exit(main())
