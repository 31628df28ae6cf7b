"""Manifest and label validation: every error names file, line and column."""

import re

import pandas as pd
import pytest

from raypath.cohort import CohortError, load_cohort, load_labels, load_manifest

HEADER = "slide_id,path,patient_id,specimen_id,scanner,center,mpp"


@pytest.fixture
def cohort_dir(tmp_path):
    (tmp_path / "slides").mkdir()
    for name in ("a", "b", "c"):
        (tmp_path / "slides" / f"{name}.svs").write_bytes(b"x")
    return tmp_path


def write(path, *lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def manifest(cohort_dir, *rows, header=HEADER):
    return write(cohort_dir / "manifest.csv", header, *rows)


def expect(match, call, *args, **kwargs):
    with pytest.raises(CohortError, match=match):
        call(*args, **kwargs)


def test_valid_manifest_resolves_relative_paths_and_optional_columns(cohort_dir):
    path = manifest(cohort_dir, "A,slides/a.svs,P1,S1,aperio,,0.25", "B,slides/b.svs,P1,S1,leica,site-2,")
    frame = load_manifest(path)
    assert list(frame.columns[:7]) == [
        "slide_id",
        "path",
        "patient_id",
        "specimen_id",
        "scanner",
        "center",
        "mpp",
    ]
    assert frame.loc[0, "path"] == str((cohort_dir / "slides" / "a.svs").resolve())
    assert frame.loc[0, "mpp"] == 0.25 and pd.isna(frame.loc[1, "mpp"])
    assert pd.isna(frame.loc[0, "center"]) and frame.loc[1, "center"] == "site-2"


def test_missing_columns_are_named(cohort_dir):
    path = manifest(cohort_dir, "A,slides/a.svs,P1", header="slide_id,path,patient_id")
    expect(r"manifest.csv: missing column\(s\) \['specimen_id', 'scanner'\]", load_manifest, path)


def test_empty_value_names_line_and_column(cohort_dir):
    path = manifest(cohort_dir, "A,slides/a.svs,P1,S1,aperio,,", "B,slides/b.svs,P2,S2,,,")
    expect(r"manifest.csv line 3, column 'scanner': empty value", load_manifest, path)


def test_blank_lines_keep_file_line_numbers(cohort_dir):
    path = manifest(cohort_dir, "A,slides/a.svs,P1,S1,aperio,,", "", "B,slides/b.svs,P2,S2,aperio,,abc")
    expect(r"manifest.csv line 4, column 'mpp': 'abc' is not a number", load_manifest, path)


def test_duplicate_slide_id(cohort_dir):
    path = manifest(
        cohort_dir, "A,slides/a.svs,P1,S1,x,,", "B,slides/b.svs,P1,S1,y,,", "A,slides/c.svs,P2,S2,x,,"
    )
    expect(r"line 4, column 'slide_id': 'A': duplicate slide id \(line 2\)", load_manifest, path)


def test_slide_ids_differing_only_by_case_collide(cohort_dir):
    path = manifest(cohort_dir, "Slide1,slides/a.svs,P1,S1,x,,", "SLIDE1,slides/b.svs,P1,S1,y,,")
    expect(
        r"line 3, column 'slide_id': 'SLIDE1': differs only by case from 'Slide1' \(line 2\)",
        load_manifest,
        path,
    )


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("slide_id", "a/b", "path separator"),
        ("slide_id", "a\\\\b", "path separator"),
        ("slide_id", "..", "starts with '.'"),
        ("slide_id", "/etc/passwd", "path separator"),
        ("slide_id", ".hidden", "starts with '.'"),
        ("slide_id", "a..b", "contains '..'"),
        ("slide_id", "C:evil", "contains ':'"),
        ("slide_id", "a\x01b", "control character"),
        ("specimen_id", "../up", "path separator"),
        ("patient_id", "..", "starts with '.'"),
    ],
)
def test_unsafe_ids(cohort_dir, column, value, reason):
    row = {"slide_id": "A", "path": "slides/a.svs", "patient_id": "P1", "specimen_id": "S1", "scanner": "x"}
    row[column] = value.replace("\\\\", "\\")
    path = manifest(
        cohort_dir,
        ",".join(row.values()) + ",,",
        header="slide_id,path,patient_id,specimen_id,scanner,center,mpp",
    )
    expect(rf"line 2, column '{column}': unsafe id .*{re.escape(reason)}", load_manifest, path)


def test_missing_slide_file_names_resolved_path(cohort_dir):
    path = manifest(cohort_dir, "A,slides/a.svs,P1,S1,x,,", "B,slides/nope.svs,P1,S1,y,,")
    expect(r"line 3, column 'path': slide file not found: .*slides/nope.svs", load_manifest, path)
    assert len(load_manifest(path, check_files=False)) == 2


@pytest.mark.parametrize("value", ["fast", "-0.5", "0", "nan"])
def test_bad_mpp(cohort_dir, value):
    path = manifest(cohort_dir, f"A,slides/a.svs,P1,S1,x,,{value}")
    expect(r"line 2, column 'mpp': ", load_manifest, path)


def test_specimen_cannot_belong_to_two_patients(cohort_dir):
    path = manifest(cohort_dir, "A,slides/a.svs,P1,S1,x,,", "B,slides/b.svs,P2,S1,y,,")
    expect(r"line 3, column 'patient_id': specimen 'S1' already belongs to patient 'P1'", load_manifest, path)


def test_parquet_manifest_reports_rows(cohort_dir):
    frame = pd.DataFrame(
        {
            "slide_id": ["A", "B"],
            "path": ["slides/a.svs", "slides/b.svs"],
            "patient_id": ["P1", "P2"],
            "specimen_id": ["S1", "S2"],
            "scanner": ["x", "x"],
            "mpp": [0.5, None],
        }
    )
    frame.to_parquet(cohort_dir / "m.parquet")
    assert load_manifest(cohort_dir / "m.parquet")["mpp"].iloc[0] == 0.5
    frame.loc[1, "slide_id"] = "a"
    frame.to_parquet(cohort_dir / "m.parquet")
    expect(
        r"m.parquet row 2, column 'slide_id': 'a': differs only by case",
        load_manifest,
        cohort_dir / "m.parquet",
    )


def labels(tmp_path, *lines, header="patient_id,label,time,event"):
    return write(tmp_path / "labels.csv", header, *lines)


def test_valid_labels_types(tmp_path):
    frame = load_labels(labels(tmp_path, "P1,1,12.5,1", "P2,0,30,0"), patients={"P1", "P2", "P3"})
    assert frame["label"].tolist() == [1, 0] and frame["event"].tolist() == [1, 0]
    assert frame["time"].dtype == "float64"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("P1,1,abc,1", r"line 3, column 'time': 'abc' is not a number"),
        ("P1,1,-3,1", r"line 3, column 'time': '-3' is negative"),
        ("P1,1,3,2", r"line 3, column 'event': '2' must be 0 \(censored\) or 1"),
        ("P1,0.5,3,1", r"line 3, column 'label': '0.5' is not an integer"),
        ("P1,x,3,1", r"line 3, column 'label': 'x' is not a number"),
        ("P1,,3,1", r"line 3, column 'label': empty value"),
        ("P0,1,3,1", r"line 3, column 'patient_id': duplicate patient 'P0' \(line 2\)"),
        ("P9,1,3,1", r"line 3, column 'patient_id': label for unknown patient 'P9'"),
        ("../P1,1,3,1", r"line 3, column 'patient_id': unsafe id"),
    ],
)
def test_label_errors(tmp_path, row, message):
    path = labels(tmp_path, "P0,0,1,0", row)
    expect(rf"labels.csv {message}", load_labels, path, patients={"P0", "P1"})


def test_label_table_needs_targets(tmp_path):
    expect(r"needs a 'label' column", load_labels, labels(tmp_path, "P1,x", header="patient_id,note"))
    expect(r"missing column \['event'\]", load_labels, labels(tmp_path, "P1,3", header="patient_id,time"))
    survival_only = load_labels(labels(tmp_path, "P1,3,1", header="patient_id,time,event"))
    assert "label" not in survival_only.columns


def test_load_cohort_joins_and_rejects_unknown_patients(cohort_dir):
    path = manifest(cohort_dir, "A,slides/a.svs,P1,S1,x,,", "B,slides/b.svs,P2,S2,x,,")
    cohort = load_cohort(path, labels(cohort_dir, "P1,1,3,1"))
    assert cohort.unlabelled_patients == {"P2"}
    assert cohort.slides.set_index("slide_id").loc["A", "label"] == 1
    expect(r"label for unknown patient 'P7'", load_cohort, path, labels(cohort_dir, "P7,1,3,1"))
