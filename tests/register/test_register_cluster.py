"""A real two-node Ray cluster on this machine (the suite's `two_node_cluster`): `ray job submit
jobs/register.py` registers the specimens on both nodes and assembles one table."""

import pandas as pd
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]


def test_job_submitted_to_a_two_node_cluster_spreads_specimens_over_both_nodes(two_node_cluster,
                                                                                register_cohort, tmp_path):
    out = tmp_path / "registration.parquet"
    args = ["--manifest", str(register_cohort / "manifest.csv"), "--out", str(out), "--run-id", "cluster"]
    done = two_node_cluster["submit"](["python", "jobs/register.py", *args], timeout=360)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    records = pd.read_csv(tmp_path / "registration" / "_runs" / "cluster" / "specimens.csv")
    assert sorted(records["specimen_id"]) == ["S0000", "S0001", "S0002", "S0003"]
    assert set(records["status"]) == {"done"}
    assert records["node_id"].nunique() == 2, records[["specimen_id", "node_id"]]
    table = pd.read_parquet(out)
    assert len(table) == 8 and table["slide_id"].is_unique
