"""Issue 16, cases 3 and 6: bad input is refused before Ray, an encoder or a trial starts, with exit
status 2 and one line naming it (no traceback): unknown FMs, missing slide files, an unwritable output,
labels that do not cover the features (both ways, for train and sweep), a registration with a missing
slide or an unknown reference scanner (an unreadable slide fails only its specimen: tests/register).
Slides smaller than one tile are skipped with that reason by every reader."""

import subprocess
from pathlib import Path

import numpy as np
import pytest
import ray
import tifffile
import yaml
from cohortkit import ENCODER, good_slides, leftovers, manifest_row, write_manifest
from faultkit import aperio_header, tissue_image, write_tiff_pyramid

from raypath.cli import main
from raypath.extract.tiles import ReadSettings, slide_messages
from raypath.slides import open_slide
from raypath.slides.config import TilingConfig
from raypath.store import FeatureStore, provenance, tiles_table


def one_error_line(capsys: pytest.CaptureFixture) -> str:
    """The single error line a refused command printed (and no traceback)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if " ERROR " in line]
    assert len(errors) == 1, err
    return errors[0]


@pytest.fixture
def no_sweep_work(monkeypatch):
    """Fail the test if the sweep starts Ray or a trial."""
    from raypath.sweep import driver

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the sweep started Ray or a trial despite bad input")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", forbidden)
    monkeypatch.setattr(driver, "run_phase", forbidden)


def extract(manifest: Path, out: Path, *encoders: str) -> int:
    return main(["extract", "--manifest", str(manifest), "--out", str(out),
                 *[flag for name in encoders or (ENCODER,) for flag in ("--encoder", name)]])


def small_manifest(directory: Path, *, missing: int = 0) -> Path:
    """Two real slides and `missing` rows whose file does not exist."""
    slides = good_slides(directory / "slides", 2)
    slides += [(f"gone-{i}", directory / "slides" / f"gone-{i}.svs") for i in range(missing)]
    rows = [manifest_row(slide_id, path, index=i) for i, (slide_id, path) in enumerate(slides)]
    return write_manifest(directory / "manifest.csv", rows)


# ---------------------------------------------------------------- case 6: extraction inputs

def test_an_unknown_fm_is_refused_before_ray_or_any_encoder(tmp_path, no_extraction_work, capsys):
    code = extract(small_manifest(tmp_path), tmp_path / "out", ENCODER, "no-such-fm")
    line = one_error_line(capsys)
    assert code == 2 and "unknown encoder 'no-such-fm'; known:" in line and "tiny-uni" in line


def test_missing_slide_files_are_refused_before_ray_or_any_encoder(tmp_path, no_extraction_work, capsys):
    manifest = small_manifest(tmp_path, missing=7)
    out = tmp_path / "out"
    code = extract(manifest, out)
    line = one_error_line(capsys)
    assert code == 2 and f"{manifest}: 7 of 9 slides to extract have no file" in line
    assert "line 4 'gone-0'" in line and "line 8 'gone-4'" in line and "and 2 more" in line
    assert "gone-5" not in line
    assert not list(out.rglob("*.parquet")) and not (out / "failures.csv").exists() and leftovers(out) == []


def read_only(directory: Path) -> Path:
    """A directory this process cannot create files in: mode 0555, or immutable where root ignores modes."""
    directory.mkdir()
    directory.chmod(0o555)
    probe = directory / "probe"
    try:
        probe.touch()
    except PermissionError:
        return directory
    probe.unlink()
    immutable = subprocess.run(["chattr", "+i", str(directory)], capture_output=True, check=False)
    if immutable.returncode != 0:
        pytest.skip("this user writes into mode-0555 directories and cannot set the immutable flag")
    return directory


@pytest.fixture
def unwritable(request, tmp_path) -> Path:
    if request.param == "under a file":
        (tmp_path / "a-file").write_text("not a directory")
        yield tmp_path / "a-file" / "out"
        return
    directory = read_only(tmp_path / "read-only")
    yield directory
    subprocess.run(["chattr", "-i", str(directory)], capture_output=True, check=False)
    directory.chmod(0o755)


@pytest.mark.parametrize("unwritable", ["under a file", "read-only directory"], indirect=True)
def test_an_unwritable_output_is_refused_before_ray_or_any_encoder(tmp_path, unwritable, no_extraction_work,
                                                                  capsys):
    code = extract(small_manifest(tmp_path), unwritable)
    line = one_error_line(capsys)
    assert code == 2 and f"output {unwritable} is not writable" in line


# ---------------------------------------------------------------- case 6: tiny slides, every reader

TILING = TilingConfig()
TINY = 160  # px at 0.5 um/px: 80 um, less than one 224 px tile at 0.5 um/px (112 um)


def tiny_slide(directory: Path, *, layout: str, levels: int) -> Path:
    """A JPEG TIFF smaller than one tile: tiled (every reader opens it) or in strips (cuCIM only)."""
    image = tissue_image(TINY, seed=4)
    path = directory / f"tiny-{layout}-{levels}.tif"
    description = aperio_header(TINY, TINY, mpp=0.5)
    if layout == "tiled":
        return write_tiff_pyramid(path, image, levels=levels, description=description, tile=16)
    with tifffile.TiffWriter(path) as tif:
        for level in range(levels):
            tif.write(image[:: 2**level, :: 2**level], compression="jpeg", photometric="rgb", metadata=None,
                      description=description if level == 0 else None, rowsperstrip=16,
                      subfiletype=0 if level == 0 else 1)
    return path


READERS = {"tiled": ("auto", "jpeg", "cucim", "openslide"), "stripped": ("auto", "cucim")}
CASES = [(layout, reader) for layout, readers in READERS.items() for reader in readers]


@pytest.mark.parametrize("non_pyramidal", ["skip", "process"])
@pytest.mark.parametrize("levels", [1, 2])
@pytest.mark.parametrize(("layout", "reader"), CASES)
def test_a_slide_smaller_than_one_tile_is_skipped_by_every_reader(tmp_path, layout, reader, levels,
                                                                 non_pyramidal):
    path = tiny_slide(tmp_path, layout=layout, levels=levels)
    settings = ReadSettings(tiling=TilingConfig(reader=reader), non_pyramidal=non_pyramidal,
                            tiles_per_chunk=8, max_attempts=1, timeout_s=60)
    messages = slide_messages(slide_id="s", path=str(path), mpp=None, settings=settings, start_tile=0)
    outcome = [m for m in messages if m[0] != "stage"]
    assert len(outcome) == 1 and outcome[0][:2] == ("skip", "open"), outcome
    assert outcome[0][2].startswith(f"smaller than one tile ({TINY}x{TINY} px"), outcome


@pytest.mark.parametrize("reader", ["jpeg", "cucim", "openslide"])
def test_a_region_beyond_the_slide_edge_reads_as_glass_on_every_reader(tmp_path, reader):
    """cuCIM refused such a region ("out-of-boundary") and so failed thumbnails of small slides."""
    path = tiny_slide(tmp_path, layout="tiled", levels=1)
    with open_slide(path, reader=reader) as slide:
        beyond = slide.read_region(location=(TINY, 0), level=0, size=(8, 8))
        thumbnail = slide.thumbnail(mpp=TILING.tissue.thumbnail_mpp)
    assert (beyond == 255).all() and thumbnail.image.size > 0


# ---------------------------------------------------------------- case 6: registration inputs

def register(manifest: Path, out: Path, *extra: str) -> int:
    return main(["register", "--manifest", str(manifest), "--out", str(out), *extra])


@pytest.fixture
def no_thumbnails(monkeypatch):
    from raypath.register import run
    from raypath.slides.registration import specimen

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("registration started Ray or read a slide despite bad input")

    monkeypatch.setattr(specimen, "open_slide", forbidden)
    monkeypatch.setattr(run, "connect", forbidden)


def test_register_refuses_a_missing_slide_in_one_line(tmp_path, no_thumbnails, capsys):
    manifest = small_manifest(tmp_path, missing=1)
    code = register(manifest, tmp_path / "registration.parquet")
    line = one_error_line(capsys)
    assert code == 2 and "line 4, column 'path': slide file not found" in line
    assert not (tmp_path / "registration.parquet").exists()


def test_register_refuses_a_reference_scanner_that_matches_no_scanner(tmp_path, no_thumbnails, capsys):
    out = tmp_path / "registration.parquet"
    code = register(small_manifest(tmp_path), out, "--reference-scanner", "scaner-a")
    line = one_error_line(capsys)
    assert code == 2 and "reference scanner 'scaner-a' matches no scanner" in line
    assert "['scanner-a', 'scanner-b']" in line and not out.exists()


# ---------------------------------------------------------------- case 3: labels vs features

PATIENTS = [f"P{i:03d}" for i in range(10)]


@pytest.fixture
def features(tmp_path) -> Path:
    """A feature store with one slide for each of ten patients."""
    meta = provenance(encoder=ENCODER, card={"name": ENCODER}, weights_hash="w", tiling={}, tiling_hash="abc",
                      embed_dim=4)
    store = FeatureStore(tmp_path / "features", encoder=ENCODER, tiling_hash="abc")
    for index, patient in enumerate(PATIENTS):
        identity = {"slide_id": f"slide-{index}", "specimen_id": f"S{index}", "patient_id": patient,
                    "scanner": "scanner-a"}
        store.write(identity["slide_id"], tiles_table(
            slide=identity, coords=np.zeros((3, 2)), features=np.ones((3, 4), np.float32), extent_l0=224,
            tile_px=224, mpp=0.5, tissue_fraction=np.ones(3), metadata=meta))
    return tmp_path / "features"


COVERAGE = {
    # patients with features and no label row: the first five are named, then the count
    "unlabelled": (PATIENTS[:3], "7 patients with features under",
                   "['P003', 'P004', 'P005', 'P006', 'P007']"),
    # label rows naming no patient with features (a typo in the ids)
    "unmatched": ([*PATIENTS, "P999", "p000"], "2 of 12 labelled patients have no features",
                  "['P999', 'p000']"),
}


def labels_file(tmp_path: Path, patients: list[str]) -> Path:
    path = tmp_path / "labels.csv"
    path.write_text("patient_id,label\n" + "".join(f"{p},{i % 2}\n" for i, p in enumerate(patients)))
    return path


@pytest.mark.parametrize("case", COVERAGE)
def test_train_refuses_labels_that_do_not_cover_the_features(tmp_path, features, monkeypatch, capsys, case):
    patients, count, named = COVERAGE[case]

    def forbidden(**kwargs: object) -> None:
        raise AssertionError("training started despite labels that do not cover the features")

    monkeypatch.setattr("raypath.train.engine.train_one", forbidden)
    monkeypatch.setattr("raypath.train.data.open_training_data", forbidden)
    code = main(["train", "--features", str(features), "--encoder", ENCODER,
                 "--labels", str(labels_file(tmp_path, patients)), "--out", str(tmp_path / "model")])
    line = one_error_line(capsys)
    assert code == 2 and count in line and named in line and "P008" not in line
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize("case", COVERAGE)
def test_sweep_refuses_labels_that_do_not_cover_the_features(tmp_path, features, no_sweep_work, capsys, case):
    patients, count, named = COVERAGE[case]
    config = sweep_config(tmp_path, features, labels=labels_file(tmp_path, patients))
    code = main(["sweep", "--config", str(config)])
    line = one_error_line(capsys)
    assert code == 2 and count in line and named in line


def sweep_config(tmp_path: Path, features: Path, *, labels: Path) -> Path:
    path = tmp_path / "sweep.yaml"
    features_section = {"root": str(features), "fms": [ENCODER], "labels": str(labels)}
    path.write_text(yaml.safe_dump({"sweep_id": "coverage", "output_dir": str(tmp_path / "sweep"),
                                    "features": features_section}))
    return path


def test_sweep_with_an_unknown_fm_fails_before_ray(tmp_path, features, no_sweep_work, capsys):
    config = sweep_config(tmp_path, features, labels=labels_file(tmp_path, PATIENTS))
    code = main(["sweep", "--config", str(config), "--encoder", f"{ENCODER},no-such-fm"])
    line = one_error_line(capsys)
    assert code == 2 and "no features of FM 'no-such-fm'" in line and f"found ['{ENCODER}']" in line
