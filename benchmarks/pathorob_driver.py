"""Runs PathoROB's own robustness index and clustering score on given tile features and times them.

Executed by `bench_evaluate_fm.py` with PathoROB's environment (its pinned numpy / pandas /
scikit-learn) and a PathoROB checkout on PYTHONPATH; nothing of PathoROB is part of raypath. The
features are stored as a 'camelyon' feature set through PathoROB's FeatureDataManager (every row in
its ID subset), then its `compute` entry points run with their defaults (RI: k chosen by kNN
balanced accuracy, `k_opt_param=-1`). Prints one JSON line: wall and CPU seconds (this process's,
threads included) and values.

    python pathorob_driver.py FEATURES.npz WORKDIR
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd


def main() -> int:
    from pathorob.clustering_score import clustering_score
    from pathorob.features.data_manager import FeatureDataManager
    from pathorob.robustness_index import robustness_index

    arrays = np.load(sys.argv[1], allow_pickle=False)
    work = Path(sys.argv[2])
    features_dir, metadata_dir = work / "features", work / "metadata"
    metadata_dir.mkdir(parents=True, exist_ok=True)
    slides = arrays["slides"].astype(str)
    meta = pd.DataFrame({"subset": "ID", "slide_id": slides,
                         "patch_id": pd.Series(slides).groupby(slides).cumcount().astype(str),
                         "biological_class": arrays["classes"].astype(str),
                         "medical_center": arrays["centers"].astype(str)})
    FeatureDataManager(features_dir=str(features_dir), metadata_dir=str(metadata_dir)).save_features(
        "fm", "camelyon", arrays["features"], meta)
    for name in ("camelyon", "camelyon_reduced"):
        meta.to_csv(metadata_dir / f"{name}.csv", index=False)
    common = {"model": "fm", "dataset": "camelyon", "features_dir": str(features_dir),
              "metadata_dir": str(metadata_dir)}
    started, cpu = time.perf_counter(), time.process_time()
    robustness_index.compute(**common, results_dir=str(work / "ri"), figures_subdir=str(work / "ri" / "fig"),
                             k_opt_param=-1, num_workers=int(sys.argv[3]) if len(sys.argv) > 3 else 2)
    ri_s, ri_cpu = time.perf_counter() - started, time.process_time() - cpu
    started, cpu = time.perf_counter(), time.process_time()
    summary = clustering_score.compute(**common, results_dir=str(work / "cs"), overwrite_results=True)
    cs_s, cs_cpu = time.perf_counter() - started, time.process_time() - cpu
    print(json.dumps({"ri_s": ri_s, "cs_s": cs_s, "ri_cpu": ri_cpu, "cs_cpu": cs_cpu,
                      "cs": summary["clustering_score_mean"],
                      "k_median": summary["Ks"]["median"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
