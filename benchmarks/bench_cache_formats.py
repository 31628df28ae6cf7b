"""Which on-disk format serves `max_tiles` sampling best: a plain .npy memory map, Lance or zarr v3.

The workload is what a training epoch does: for every bag (in random order) draw `--sample` tile
rows within the bag, sorted for locality, and gather them as one float16 block. Each format holds
the same `--bags` x `--tiles` x `--dim` float16 array; rows/s are measured warm (data in the page
cache) and cold (page cache dropped first, when the process may do so). The formats:

- npy: one contiguous array, `np.load(mmap_mode="r")`, fancy indexing (what raypath uses);
- lance: a Lance dataset with a fixed-size-list column, `dataset.take(rows)` (row takes);
- zarr: a zarr v3 array chunked by `--chunk-rows` rows, uncompressed, `array.oindex[rows]`.

    .venv/bin/python benchmarks/bench_cache_formats.py [--quick]

Needs the `bench` extra (`pip install -e .[bench]`: pylance, zarr). Writes
benchmarks/results/cache_formats.md.
"""

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from machine import header, write_section

RESULTS = Path(__file__).resolve().parent / "results" / "cache_formats.md"
Gather = Callable[[np.ndarray], np.ndarray]


def make_blocks(args: argparse.Namespace):
    """The array in bag-sized float16 blocks (never whole in memory)."""
    rng = np.random.default_rng(0)
    for _ in range(args.bags):
        yield rng.standard_normal((args.tiles, args.dim), dtype=np.float32).astype(np.float16)


def write_npy(path: Path, args: argparse.Namespace) -> Gather:
    shape = (args.bags * args.tiles, args.dim)
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=shape)
    for index, block in enumerate(make_blocks(args)):
        array[index * args.tiles:(index + 1) * args.tiles] = block
    array.flush()
    del array
    mapped = np.load(path, mmap_mode="r")
    return lambda rows: np.asarray(mapped[rows])


def write_lance(path: Path, args: argparse.Namespace) -> Gather:
    import lance
    import pyarrow as pa

    def batches():
        for block in make_blocks(args):
            flat = pa.array(block.reshape(-1), type=pa.float16())
            yield pa.record_batch([pa.FixedSizeListArray.from_arrays(flat, args.dim)], names=["features"])

    schema = pa.schema([pa.field("features", pa.list_(pa.float16(), args.dim))])
    lance.write_dataset(pa.RecordBatchReader.from_batches(schema, batches()), path)
    dataset = lance.dataset(path)

    def gather(rows: np.ndarray) -> np.ndarray:
        column = dataset.take(rows, columns=["features"]).column("features").combine_chunks()
        return column.flatten().to_numpy(zero_copy_only=False).reshape(len(rows), args.dim)

    return gather


def write_zarr(path: Path, args: argparse.Namespace) -> Gather:
    import zarr

    array = zarr.create_array(str(path), shape=(args.bags * args.tiles, args.dim), dtype="float16",
                              chunks=(args.chunk_rows, args.dim), compressors=None)
    for index, block in enumerate(make_blocks(args)):
        array[index * args.tiles:(index + 1) * args.tiles] = block
    opened = zarr.open_array(str(path), mode="r")
    return lambda rows: opened.oindex[rows]


def drop_page_cache() -> bool:
    try:
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
        return True
    except OSError:
        return False


def epoch_rows_per_s(gather: Gather, args: argparse.Namespace, *, seed: int) -> float:
    """One epoch of max_tiles sampling: every bag once, `sample` sorted rows each."""
    rng = np.random.default_rng(seed)
    started, total = time.perf_counter(), 0
    for bag in rng.permutation(args.bags):
        rows = np.sort(rng.choice(args.tiles, size=args.sample, replace=False)) + bag * args.tiles
        block = gather(rows)
        total += len(block)
    return total / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bags", type=int, default=500)
    parser.add_argument("--tiles", type=int, default=2000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--sample", type=int, default=256)
    parser.add_argument("--chunk-rows", type=int, default=64)
    parser.add_argument("--work", type=Path, default=None, help="directory for the three copies")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick:
        args.bags, args.tiles, args.dim = 50, 500, 256
    work = Path(tempfile.mkdtemp(prefix="formats-", dir=args.work))
    rows = []
    try:
        formats = (("npy memmap", write_npy), ("lance take", write_lance), ("zarr v3 oindex", write_zarr))
        for name, writer in formats:
            started = time.perf_counter()
            gather = writer(work / name.split()[0], args)
            written = time.perf_counter() - started
            cold = epoch_rows_per_s(gather, args, seed=1) if drop_page_cache() else float("nan")
            warm = max(epoch_rows_per_s(gather, args, seed=s) for s in (2, 3))
            rows.append(f"| {name} | {written:.0f} | {cold:,.0f} | {warm:,.0f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    gib = args.bags * args.tiles * args.dim * 2 / 2**30
    text = "\n".join([
        header("Cache formats for max_tiles sampling"),
        f"{args.bags} bags x {args.tiles} tiles x {args.dim} dims float16 ({gib:.1f} GiB) per format; an "
        f"epoch draws {args.sample} sorted rows from every bag in random order; zarr chunks of "
        f"{args.chunk_rows} rows, uncompressed. Cold = page cache dropped before the epoch; warm = best of "
        "two further epochs.\n",
        "| format | write s | rows/s cold | rows/s warm |", "|---|---|---|---|", *rows, ""])
    write_section(args.out, text)


if __name__ == "__main__":
    main()
