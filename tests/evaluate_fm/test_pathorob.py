"""PathoROB metrics on hand-built embeddings whose answer is known, plus the CLI end to end."""

import numpy as np
import pandas as pd
import pytest

from raypath.evaluate_fm import average_performance_drop, clustering_score, robustness_curve
from raypath.evaluate_fm.apd import DropResult, held_out_centers, unseen_rows
from raypath.evaluate_fm.config import EvaluateFMConfig
from raypath.evaluate_fm.data import cohort_frame, confounder_column, feature_sources
from raypath.evaluate_fm.ri import curve_from_neighbours, pathorob_k_grid, usable_ks
from raypath.evaluate_fm.sampling import cell_labels, stratified_sample
from raypath.evaluate_fm.splits import balanced_slides, preferred_centers, schedule, split_rows
from raypath.metrics.robustness import nearest_neighbours, robustness_index


def _cohort(*, class_strength: float, center_strength: float, specimen_strength: float = 0.0,
            specimens: int = 60, centers: int = 3, tiles: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """Every specimen scanned once per center; features = class + center + tissue + noise parts."""
    rng = np.random.default_rng(seed)
    spec = np.repeat(np.arange(specimens), centers * tiles)
    center = np.tile(np.repeat(np.arange(centers), tiles), specimens)
    label = spec % 2
    dim = 16
    class_dirs, center_dirs = rng.normal(size=(2, dim)), rng.normal(size=(centers, dim))
    tissue = rng.normal(size=(specimens, dim))
    features = (class_strength * class_dirs[label] + center_strength * center_dirs[center]
                + specimen_strength * tissue[spec] + 0.3 * rng.normal(size=(len(spec), dim)))
    return {"features": features.astype(np.float32), "classes": label, "centers": center,
            "specimens": spec, "units": spec * centers + center}


def _brute_force(features: np.ndarray, *, k: int, groups: np.ndarray) -> np.ndarray:
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    sims = unit @ unit.T
    sims[groups[:, None] == groups[None, :]] = -np.inf
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]


def test_blocked_search_equals_brute_force_with_group_exclusion():
    data = _cohort(class_strength=1.0, center_strength=1.0, specimens=40, tiles=2)
    specimens = data["specimens"]
    blocked = nearest_neighbours(data["features"], k=9, groups=specimens, query_block=17, key_block=23)
    np.testing.assert_array_equal(blocked, _brute_force(data["features"], k=9, groups=specimens))


def test_center_only_features_give_ri_near_zero_and_negative_cluster_score():
    data = _cohort(class_strength=0.0, center_strength=3.0)
    curve = robustness_curve(data["features"], classes=data["classes"], centers=data["centers"],
                             groups=data["specimens"])
    ri, accuracy = curve.at_best
    assert ri < 0.1
    assert accuracy < 0.7  # biology is not readable from these features
    clusters = clustering_score(data["features"], classes=data["classes"], centers=data["centers"], k_max=5,
                                trials=3)
    assert clusters.score < -0.5


def test_class_only_features_give_ri_near_one_and_positive_cluster_score():
    data = _cohort(class_strength=3.0, center_strength=0.0)
    curve = robustness_curve(data["features"], classes=data["classes"], centers=data["centers"],
                             groups=data["specimens"])
    ri, accuracy = curve.at_best
    assert ri > 0.9 and accuracy > 0.95
    clusters = clustering_score(data["features"], classes=data["classes"], centers=data["centers"], k_max=5,
                                trials=3)
    assert clusters.score > 0.5 and clusters.k == 2
    assert len(clusters.subsets) == 3  # 1 class pair x 3 center pairs


def test_rescans_flatter_ri_unless_same_specimen_neighbours_are_excluded():
    data = _cohort(class_strength=0.0, center_strength=1.0, specimen_strength=2.5)
    args = {"classes": data["classes"], "centers": data["centers"], "grid": (1, 3, 5)}
    excluded = robustness_curve(data["features"], groups=data["specimens"], **args)
    included = robustness_curve(data["features"], **args)
    # Without exclusion a rescan of the same tissue (same class, other center) is the nearest
    # neighbour, counted as SO: the center-dominated features look robust.
    assert included.robustness_index[0] > 0.8
    assert excluded.robustness_index[0] < 0.3


def test_curve_counts_match_a_loop_and_k_is_chosen_by_knn_accuracy():
    # Six samples; each one's nearest neighbour is of the other class on the same center and the
    # next two are of its own class, so k=1 misclassifies everything and k=3 nothing.
    classes, centers = np.array([0, 0, 0, 1, 1, 1]), np.array(["a", "b", "a", "b", "a", "b"])
    table = np.array([[4, 1, 2], [3, 0, 2], [4, 0, 1], [1, 4, 5], [0, 3, 5], [1, 3, 4]])
    curve = curve_from_neighbours(table, classes=classes, centers=centers, ks=np.array([1, 3]))
    for position, k in enumerate((1, 3)):
        pairs = [(i, j) for i in range(6) for j in table[i, :k]]
        so = sum(classes[j] == classes[i] and centers[j] != centers[i] for i, j in pairs)
        os_ = sum(classes[j] != classes[i] and centers[j] == centers[i] for i, j in pairs)
        assert curve.robustness_index[position] == pytest.approx(so / (so + os_))
    np.testing.assert_allclose(curve.balanced_accuracy, [0.0, 1.0])
    assert curve.best_k == 3
    assert curve.at_best == (pytest.approx(curve.robustness_index[1]), 1.0)


def test_ri_curve_agrees_with_the_shared_robustness_index_at_every_k():
    data = _cohort(class_strength=0.1, center_strength=0.1)
    curve = robustness_curve(data["features"], classes=data["classes"], centers=data["centers"],
                             groups=data["specimens"], grid=(3, 11, 31))
    expected = [robustness_index(data["features"], data["classes"], data["centers"], k=int(k),
                                 groups=data["specimens"]) for k in curve.ks]
    assert np.isfinite(expected).all()
    np.testing.assert_allclose(curve.robustness_index, expected)


def test_vote_ties_go_to_the_smallest_label_as_in_pathorob_or_to_the_nearer_neighbours():
    # Each sample's two neighbours: one of each class, the other class nearer -> a 1:1 tie at k=2.
    classes, centers = np.array([0, 1, 0, 1]), np.array(["a", "b", "b", "a"])
    table = np.array([[1, 2], [0, 3], [3, 0], [2, 1]])
    smallest = curve_from_neighbours(table, classes=classes, centers=centers, ks=np.array([2]))
    nearest = curve_from_neighbours(table, classes=classes, centers=centers, ks=np.array([2]),
                                    tie_rule="nearest")
    # The smallest label predicts 0 everywhere (bacc 0.5); the nearer neighbour is always wrong.
    assert smallest.balanced_accuracy[0] == 0.5 and nearest.balanced_accuracy[0] == 0.0


def test_k_grid_is_pathorobs_and_capped_by_samples_minus_the_largest_excluded_group():
    grid = pathorob_k_grid(600)
    assert grid[:7] == (1, 3, 5, 7, 9, 11, 21) and grid[-1] == 591 and len(grid) == 64
    classes = np.array([0] * 10 + [1] * 30)
    slides = np.repeat(np.arange(4), 10)
    assert usable_ks(grid, classes=classes, groups=slides).max() == 21  # 40 - 10 (largest slide)
    assert usable_ks(grid, classes=classes, groups=None).max() == 31  # only the sample itself
    assert usable_ks((1, 3, 50), classes=classes, groups=None, class_cap=True).tolist() == [1, 3]
    with pytest.raises(ValueError, match="no k"):
        usable_ks((3,), classes=np.array([0, 1]), groups=None)


def _apd(data: dict[str, np.ndarray], **options) -> DropResult:
    return average_performance_drop(data["features"], classes=data["classes"],
                                    centers=data["centers"].astype(str), slides=data["units"], iterations=2,
                                    max_balanced_slides=3, **options)


def test_apd_near_zero_without_center_signal():
    drop = _apd(_cohort(class_strength=2.0, center_strength=0.0, tiles=4), held_out=("2",))
    assert abs(drop.apd_id) < 0.03 and abs(drop.apd_ood) < 0.03
    assert drop.accuracy_id[0].mean() > 0.9


def test_apd_strongly_negative_when_class_is_only_readable_through_a_center_shortcut():
    drop = _apd(_cohort(class_strength=0.15, center_strength=3.0, tiles=4), held_out=("2",))
    assert drop.accuracy_id[0].mean() > 0.6  # the balanced split still learns the weak biology
    assert drop.apd_id < -0.1
    assert drop.accuracy_id[-1].mean() < drop.accuracy_id[0].mean()


def test_apd_rescan_variant_drops_test_slides_of_specimens_seen_in_training():
    data = _cohort(class_strength=1.0, center_strength=0.5, tiles=2)
    unique = _apd(data, specimens=data["units"])  # one slide per "specimen": nothing to drop
    np.testing.assert_array_equal(unique.accuracy_id_specimen, unique.accuracy_id)
    rescans = _apd(data, specimens=data["specimens"])  # every specimen scanned on all three centers
    assert not np.array_equal(rescans.accuracy_id_specimen, rescans.accuracy_id)
    specimens = np.array(["x", "y", "x", "z", "y", "w"])
    assert unseen_rows(np.arange(1, 6), specimens, np.array([0, 3])).tolist() == [1, 4, 5]


def test_schedule_is_pathorobs_camelyon_and_tolkach_design_and_keeps_class_totals():
    assert preferred_centers(2, 2).tolist() == [1, 0]  # Camelyon: normal -> centre 1, tumour -> centre 0
    assert preferred_centers(6, 2).tolist() == [1, 1, 1, 0, 0, 0]  # Tolkach
    counts = schedule(n_centers=2, n_classes=2, m=7)  # Camelyon: 7 -/+ s slides, s = 0..7
    np.testing.assert_array_equal(counts[:, 1, 0], 7 + np.arange(8))
    np.testing.assert_array_equal(counts[:, 0, 0], 7 - np.arange(8))
    three = schedule(n_centers=3, n_classes=3, m=2)
    assert len(three) == 5
    np.testing.assert_array_equal(three.sum(axis=1), np.full((5, 3), 6))  # per-class totals fixed
    np.testing.assert_array_equal(three[-1], 6 * (three[-1] > 0))  # last split: one centre per class
    assert [balanced_slides(n, n_centers=c, min_test_slides=2, max_balanced=None)
            for n, c in ((17, 2), (12, 4), (9, 2))] == [7, 2, 3]  # Camelyon, TCGA, Tolkach
    with pytest.raises(ValueError, match="at least"):
        balanced_slides(4, n_centers=2, min_test_slides=2, max_balanced=None)


def test_split_rows_train_validate_and_test_on_pathorobs_slide_positions():
    slide_rows = {f"s{i}": np.arange(10 * i, 10 * i + 10) for i in range(7)}
    order = [[[f"s{i}" for i in range(7)]], [[f"s{i}" for i in range(7)]]]  # the same list as two cells
    rows = split_rows(order[:1], np.array([[1]]), slide_rows=slide_rows, m=2)
    np.testing.assert_array_equal(rows.train, np.arange(10))  # the first slide
    np.testing.assert_array_equal(rows.validation, np.arange(10, 15))  # count/(M*m) = 1/2 of the next slide
    np.testing.assert_array_equal(rows.test, np.arange(30, 70))  # the slides after position M*m + 1


def test_held_out_centers_are_fixed_not_rotated():
    centers = np.array(["b", "a", "c", "a"])
    assert held_out_centers(centers, []) == ("c",)
    assert held_out_centers(centers, ["a"]) == ("a",)
    assert held_out_centers(np.array(["a", "b"]), []) == ()
    with pytest.raises(ValueError, match="not in"):
        held_out_centers(centers, ["z"])


def test_feature_sources_lists_every_hash_and_skips_bookkeeping(tmp_path):
    for folder in ("tiny-uni/aaa", "tiny-uni/bbb", "tiny-conch/aaa", "_runs/2026"):
        (tmp_path / folder).mkdir(parents=True)
    assert feature_sources(str(tmp_path), encoders=[], tiling_hash=None) == [
        ("tiny-conch", "aaa"), ("tiny-uni", "aaa"), ("tiny-uni", "bbb")]
    assert feature_sources(str(tmp_path), encoders=["tiny-uni"], tiling_hash="bbb") == [("tiny-uni", "bbb")]
    with pytest.raises(FileNotFoundError, match="tiny-virchow2"):
        feature_sources(str(tmp_path), encoders=["tiny-virchow2"], tiling_hash=None)


def test_stratified_sample_keeps_small_cells_whole():
    strata = cell_labels(np.array([0] * 5 + [1] * 100 + [1] * 100), np.array(["a"] * 105 + ["b"] * 100))
    chosen = stratified_sample(strata, max_samples=45, seed=0)
    counts = np.bincount(strata[chosen])
    assert len(chosen) == 45 and counts[strata[0]] == 5
    assert sorted(counts.tolist()) == [5, 20, 20]
    assert stratified_sample(strata, max_samples=None, seed=0).size == len(strata)


def test_auto_confounder_is_the_scanner_and_unlabeled_patients_are_dropped():
    manifest = pd.DataFrame({"slide_id": ["s1", "s2", "s3"], "patient_id": ["p1", "p2", "p3"],
                             "specimen_id": ["x1", "x2", "x3"], "scanner": ["A", "B", "A"],
                             "center": ["site1", pd.NA, "site2"]})
    labels = pd.DataFrame({"label": [1, 0]}, index=pd.Index(["p1", "p2"], name="patient_id"))
    assert confounder_column(manifest, "auto") == "scanner"
    assert cohort_frame(manifest, labels)["center"].to_dict() == {"s1": "A", "s2": "B"}
    with pytest.raises(ValueError, match="no center"):
        cohort_frame(manifest, labels, center="center")
    one_scanner = manifest.assign(scanner="A", center=["site1", "site2", "site1"])
    assert confounder_column(one_scanner, "auto") == "center"  # sites are all that vary
    assert cohort_frame(one_scanner, labels)["center"].tolist() == ["site1", "site2"]


def test_config_rejects_unknown_keys_and_requires_paths():
    with pytest.raises(ValueError):
        EvaluateFMConfig(knn={"k_grid": [1, 3]})  # the old key: rejected, not ignored
    with pytest.raises(ValueError):
        EvaluateFMConfig(knn={"raypath_k_grid": [0]})
    config = EvaluateFMConfig()  # PathoROB's protocol by default
    assert (config.knn.k_cap, config.apd.iterations, config.clustering.k_max, config.clustering.trials) == (
        600, 20, 30, 50)
    with pytest.raises(ValueError, match="needs features"):
        EvaluateFMConfig().require_paths()


@pytest.fixture(scope="module")
def simulated_store(tmp_path_factory, write_simulated):
    """A tiny feature-level cohort written in the feature-store schema by `raypath.simulate.cohort`."""
    return write_simulated(tmp_path_factory.mktemp("sim"), n_specimens=24, scanner_shift=1.0)


def test_cli_end_to_end_writes_table_plot_curves_and_mlflow_runs(simulated_store, capsys):
    import mlflow

    from raypath.cli import main

    report = simulated_store / "report"
    process_uri = mlflow.get_tracking_uri()
    code = main(["evaluate-fm", "--features", str(simulated_store / "features"), "--encoder", "sim-16",
                 "--manifest", str(simulated_store / "manifest.csv"),
                 "--labels", str(simulated_store / "labels.csv"), "--out", str(report),
                 "--set", "tiles_per_slide=6", "--set", "knn.k_cap=12", "--set", "apd.iterations=1",
                 "--set", "clustering.k_max=3", "--set", "clustering.trials=2",
                 "--set", "clustering.silhouette_restarts=2", "--set", "workers=1"])
    assert code == 0
    table = pd.read_csv(report / "table.csv")
    assert table["row"].unique().tolist() == ["sim-16", "sim-16 + centering", "sim-16 + ComBat"]
    assert sorted(table["level"].unique()) == ["slide", "tile"]
    assert table[["ri", "ri_specimen", "knn_bacc", "cs"]].notna().all().all()
    # A strong scanner shift makes raw slide means center-dominated; centering removes it.
    slide = table[table["level"] == "slide"].set_index("correction")
    assert slide.loc["center", "ri"] > slide.loc["none", "ri"]
    curves = pd.read_csv(report / "curves.csv")
    assert set(curves["variant"]) == {"pathorob", "specimen"} and set(curves["k"]) <= {1, 3, 5, 7, 9, 11}
    assert (report / "ri_vs_accuracy.png").stat().st_size > 0
    assert "| sim-16 + ComBat |" in capsys.readouterr().out
    assert mlflow.get_tracking_uri() == process_uri, "the process-wide tracking URI is left alone"
    client = mlflow.MlflowClient(f"sqlite:///{report / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("fm-robustness").experiment_id])
    assert len(runs) == 4  # one parent per FM, one child per correction
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and parents[0].data.tags["kind"] == "fm-robustness"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(children) == 3 and all("slide.ri" in r.data.metrics for r in children)
    assert all(r.info.status == "FINISHED" for r in runs)
    assert list((report / "mlartifacts").rglob("table.md"))  # artifacts beside the report, not in ./mlruns


def test_cli_names_the_missing_input(tmp_path, capsys):
    from raypath.cli import main

    assert main(["evaluate-fm", "--features", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "needs manifest, labels" in capsys.readouterr().err
