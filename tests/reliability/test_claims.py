"""Issue 16, case 1, the parts under the two-process tests: when an owner counts as gone, how claims
are shared and taken over, and which temporary files a starting run may remove."""

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from raypath.extract.claims import ClaimBook
from raypath.extract.coordination import Coordination
from raypath.extract.owners import Owner, OwnerRegistry
from raypath.paths import temporary_name
from raypath.store import FeatureStore, provenance, tiles_table

LEASE_S = 60.0
STORE = ("tiny-uni", "abc")


def registered(registry: OwnerRegistry, **changes: object) -> Owner:
    owner = dataclasses.replace(Owner.this_process("test"), **changes)
    registry.register(owner)
    return owner


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def age(registry: OwnerRegistry, owner: Owner, seconds: float) -> None:
    """Set the owner's last heartbeat `seconds` ago."""
    then = time.time() - seconds
    os.utime(registry.path(owner.token), (then, then))


def test_a_live_process_on_this_host_with_a_fresh_heartbeat_is_an_owner(tmp_path):
    registry = OwnerRegistry(tmp_path, lease_s=LEASE_S)
    assert not registry.is_gone(registered(registry).token)


@pytest.mark.parametrize("case", ["dead pid", "reused pid", "stale heartbeat", "no owner file"])
def test_an_owner_is_gone_when_it_cannot_be_writing(tmp_path, case):
    registry = OwnerRegistry(tmp_path, lease_s=LEASE_S)
    owner = registered(registry, pid=dead_pid()) if case == "dead pid" else registered(
        registry, started="1") if case == "reused pid" else registered(registry)
    if case == "stale heartbeat":
        age(registry, owner, 2 * LEASE_S)
    if case == "no owner file":
        registry.unregister(owner.token)
    assert registry.is_gone(owner.token)


def test_an_owner_on_another_host_lives_by_its_heartbeat_alone(tmp_path):
    registry = OwnerRegistry(tmp_path, lease_s=LEASE_S)
    owner = registered(registry, host="another-node", pid=dead_pid())
    assert not registry.is_gone(owner.token)  # its pid means nothing here
    age(registry, owner, 2 * LEASE_S)
    assert registry.is_gone(owner.token)


def books(tmp_path: Path) -> tuple[OwnerRegistry, ClaimBook, ClaimBook]:
    registry = OwnerRegistry(tmp_path, lease_s=LEASE_S)
    first, second = registered(registry), registered(registry)
    return (registry, ClaimBook(tmp_path, token=first.token, owners=registry),
            ClaimBook(tmp_path, token=second.token, owners=registry))


def test_a_claimed_slide_is_held_until_its_owner_releases_it(tmp_path):
    _, first, second = books(tmp_path)
    assert first.claim([(STORE, "s1"), (STORE, "s2")]) == {}
    assert second.claim([(STORE, s) for s in ("s1", "s2", "s3")]) == {(STORE, "s1"): first.token,
                                                                     (STORE, "s2"): first.token}
    first.release([(STORE, "s1")])
    assert second.claim([(STORE, "s1")]) == {}
    assert second.holder(STORE, "s1") == second.token and first.holder(STORE, "s2") == first.token


def test_the_claims_of_a_gone_owner_are_taken_over_and_swept(tmp_path):
    registry, first, second = books(tmp_path)
    first.claim([(STORE, "s1"), (STORE, "s2")])
    registry.unregister(first.token)  # its process is gone
    assert second.claim([(STORE, "s1")]) == {}
    assert second.sweep() == 1  # s2's claim
    assert second.holder(STORE, "s1") == second.token and second.holder(STORE, "s2") is None
    first.release_all()  # a late release by the old owner leaves the new claim alone
    assert second.holder(STORE, "s1") == second.token


def write_slide(store: FeatureStore, slide_id: str) -> None:
    meta = provenance(encoder=store.encoder, card={"name": store.encoder}, weights_hash="w", tiling={},
                      tiling_hash=store.tiling_hash, embed_dim=4)
    identity = {"slide_id": slide_id, "specimen_id": "S", "patient_id": "P", "scanner": "a"}
    table = tiles_table(slide=identity, coords=np.zeros((2, 2)), features=np.ones((2, 4), np.float32),
                        extent_l0=224, tile_px=224, mpp=0.5, tissue_fraction=np.ones(2), metadata=meta)
    store.write(slide_id, table)


def test_a_starting_run_removes_only_files_whose_writer_is_gone(tmp_path):
    """The bug behind case 1: a second run deleted the first run's temporary files as stale."""
    out = tmp_path / "out"
    store = FeatureStore(out, encoder=STORE[0], tiling_hash=STORE[1])
    write_slide(store, "done")
    claims = out / "_claims"
    registry = OwnerRegistry(claims, lease_s=LEASE_S)
    live, gone = registered(registry), registered(registry, pid=dead_pid())
    directory = Path(store.directory)
    names = {"live": temporary_name("s1.parquet", owner=live.token),
             "gone": temporary_name("s2.parquet", owner=gone.token),
             "unowned": ".s3.parquet.tmp-deadbeef",  # written before owner tokens existed
             "record": temporary_name("failures.csv", owner=gone.token)}
    for name, filename in names.items():
        (out if name == "record" else directory).joinpath(filename).write_bytes(b"half")
    with Coordination(claims_dir=claims, run_id="starting", lease_s=LEASE_S) as coordination:
        coordination.clear_stale(stores={STORE[0]: store}, output=str(out))
        assert sorted(p.name for p in directory.iterdir() if p.name.startswith(".")) == [names["live"]]
        assert not (out / names["record"]).exists()
        assert registry.tokens() == sorted([live.token, coordination.token])  # the gone owner's file too
    assert store.slide_ids() == ["done"]


def test_without_a_claims_directory_only_old_temporaries_count_as_abandoned(tmp_path):
    """An object-store output without claims_dir: age against the lease is all a run can go by."""
    store = FeatureStore(tmp_path, encoder=STORE[0], tiling_hash=STORE[1])
    directory = Path(store.directory)
    directory.mkdir(parents=True)
    fresh, old = directory / temporary_name("a.parquet", owner="f" * 16), directory / ".b.parquet.tmp-1234"
    for path in (fresh, old):
        path.write_bytes(b"half")
    then = time.time() - 2 * LEASE_S
    os.utime(old, (then, then))
    with Coordination(claims_dir=None, run_id="remote", lease_s=LEASE_S) as coordination:
        assert store.clear_temporaries(is_gone=coordination.abandoned) == 1
    assert fresh.exists() and not old.exists()
