"""Reading datasets: CSV and Parquet, what was read, and clear errors for bad data."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from cumulo.errors import DatasetError
from cumulo.functions.datasets import load_dataset, split, xy
from tests.functions.conftest import MakeContext, classification_frame


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_csv_is_read_with_what_was_read(make_ctx: MakeContext, csv_dataset: Path):
    dataset = load_dataset(make_ctx(), str(csv_dataset))
    assert dataset.frame.shape == (400, 9)
    assert dataset.info.uri == str(csv_dataset)
    assert dataset.info.rows == 400
    assert dataset.info.columns == (*[f"f{i}" for i in range(8)], "target")
    assert dataset.info.hash == sha256(csv_dataset)
    assert dataset.info.version is None  # a local file has no store version


def test_parquet_and_csv_give_the_same_table(
    make_ctx: MakeContext, csv_dataset: Path, parquet_dataset: Path
):
    ctx = make_ctx()
    from_csv = load_dataset(ctx, str(csv_dataset)).frame
    from_parquet = load_dataset(ctx, f"file://{parquet_dataset}").frame
    pd.testing.assert_frame_equal(from_csv, from_parquet, check_exact=False)


def test_pq_suffix_and_upper_case_suffix_are_parquet(make_ctx: MakeContext, data_dir: Path):
    for name in ("short.pq", "LOUD.PARQUET"):
        classification_frame(50).to_parquet(data_dir / name)
        assert load_dataset(make_ctx(), str(data_dir / name)).info.rows == 50


def test_hash_is_stable_and_follows_the_bytes(make_ctx: MakeContext, csv_dataset: Path):
    ctx = make_ctx()
    first = load_dataset(ctx, str(csv_dataset)).info.hash
    assert load_dataset(ctx, f"file://{csv_dataset}").info.hash == first
    classification_frame(seed=8).to_csv(csv_dataset, index=False)
    assert load_dataset(ctx, str(csv_dataset)).info.hash != first


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("empty.csv", b"", "the file is empty"),
        ("header-only.csv", b"a,b,target\n", "no rows"),
        ("broken.parquet", b"this is not parquet", "not readable as Parquet"),
        ("table.json", b"[]", "unknown format '.json'; known: .csv, .parquet, .pq"),
        ("table", b"a,b\n1,2\n", "unknown format '(no suffix)'"),
        ("binary.csv", b"\xff\xfe\x00\x81\x00", "not readable as CSV"),
    ],
)
def test_unreadable_datasets_say_which_and_why(
    make_ctx: MakeContext, data_dir: Path, name: str, content: bytes, problem: str
):
    path = data_dir / name
    path.write_bytes(content)
    with pytest.raises(DatasetError) as caught:
        load_dataset(make_ctx(), str(path))
    assert str(caught.value).startswith(f"dataset {path}: ")
    assert problem in str(caught.value)


def test_a_missing_file_is_a_dataset_error(make_ctx: MakeContext, data_dir: Path):
    uri = f"file://{data_dir}/nowhere.csv"
    with pytest.raises(DatasetError, match=f"dataset {uri}: no such file"):
        load_dataset(make_ctx(), uri)


def test_a_missing_target_column_names_the_columns(make_ctx: MakeContext, csv_dataset: Path):
    dataset = load_dataset(make_ctx(), str(csv_dataset))
    with pytest.raises(DatasetError, match=r"no column 'label' \(has: f0, f1, .*, target\)"):
        dataset.features("label")
    assert dataset.features("target") == [f"f{i}" for i in range(8)]


def test_non_numeric_and_incomplete_features_are_named(make_ctx: MakeContext, data_dir: Path):
    path = data_dir / "mixed.csv"
    path.write_text("size,colour,weight,target\n1,red,2.0,0\n2,blue,,1\n3,red,1.5,0\n")
    dataset = load_dataset(make_ctx(), str(path))
    with pytest.raises(DatasetError, match=r"must be numeric; 'colour' are not"):
        dataset.xy(["size", "colour", "weight"], "target")
    with pytest.raises(DatasetError, match=r"missing values in 'weight'"):
        dataset.xy(["size", "weight"], "target")
    x, y = dataset.xy(["size"], "target")
    assert x.dtype == float and x.shape == (3, 1) and list(y) == [0, 1, 0]


def test_xy_names_missing_feature_columns():
    with pytest.raises(DatasetError, match="dataset mem: no column 'f99'"):
        xy(classification_frame(10), ["f0", "f99"], "target", "mem")


def test_split_is_deterministic_and_partitions_the_rows():
    frame = classification_frame(100)
    train, holdout = split(frame, 0.2, seed=1)
    again_train, again_holdout = split(frame, 0.2, seed=1)
    assert (len(train), len(holdout)) == (80, 20)
    pd.testing.assert_frame_equal(holdout, again_holdout)
    pd.testing.assert_frame_equal(train, again_train)
    rows = pd.concat([train, holdout]).sort_values("f0").reset_index(drop=True)
    pd.testing.assert_frame_equal(rows, frame.sort_values("f0").reset_index(drop=True))
    _, other = split(frame, 0.2, seed=2)
    assert not other.equals(holdout)


@pytest.mark.parametrize(("rows", "fraction"), [(3, 0.1), (2, 0.9), (10, 0.0), (10, 1.0)])
def test_split_refuses_a_holdout_that_cannot_work(rows: int, fraction: float):
    with pytest.raises(DatasetError, match="holdout"):
        split(classification_frame(rows), fraction, seed=0)
