"""Tests for planner.runs: loading, validating and filtering run tables."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.errors import PlannerWarning
from planner.runs import (
    CANONICAL,
    OPTIONAL,
    SANITY_CODES,
    RunsError,
    RunsNote,
    load_runs,
    runs_from_arrays,
    summarize_runs,
)

def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def codes(df: pd.DataFrame) -> list[str]:
    return [n.code for n in df.attrs["notes"]]


SMALL = pd.DataFrame(
    {
        "N": [1e8, 1e8, 4e8, 4e8],
        "D": [2e9, 4e9, 8e9, 1.6e10],
        "val": [3.5, 3.3, 3.0, 2.8],
        "note": ["a", "b", "c", "d"],
    }
)
SMALL_MAP = {"N": "model_size", "D": "pretrain_tokens", "val": "loss"}


# --------------------------------------------------------------------------- published data


def test_datablations_fit_set(published_file):
    path = published_file("datablations_muennighoff/final_val_losses_fit_set.csv")
    df = load_runs(
        path,
        columns={
            "N_params": "model_size",
            "D_tokens": "pretrain_tokens",
            "U_unique_tokens": "unique_tokens",
            "final_val_loss": "loss",
        },
    )
    assert len(df) == 182
    assert list(df.columns[:5]) == list(CANONICAL)
    assert df["unique_tokens"].dtype == np.float64
    assert (df["unique_tokens"] <= df["pretrain_tokens"]).all()
    # user columns are kept, at the end
    assert list(df.columns[-2:]) == ["parsed_name", "epochs_D_over_U"]
    assert df.attrs["source"] == str(path)
    assert df["run"].nunique() == 182  # no step column: each row is its own run


def test_epoch_chinchilla_tokens_derived_from_flops(published_file):
    path = published_file("epoch_chinchilla_replication/svg_extracted_data.csv")
    df = load_runs(path, columns={"Model Size": "model_size", "Training FLOP": "flops"})
    raw = pd.read_csv(path)
    assert len(df) == 245
    np.testing.assert_allclose(df["pretrain_tokens"], raw["Training FLOP"] / (6 * raw["Model Size"]))
    assert 2e8 < df["pretrain_tokens"].min() < 3e8 and 3e11 < df["pretrain_tokens"].max() < 4e11
    note = next(n for n in df.attrs["notes"] if n.code == "derived-pretrain-tokens")
    assert "flops / (6 * model_size)" in note.message and "not subtracted" in note.message


def test_gadre_overtraining_with_family(published_file):
    path = published_file("gadre_overtraining_scaling/overtrain_models_flat.csv")
    df = load_runs(
        path,
        columns={"N_params": "model_size", "D_tokens": "pretrain_tokens", "loss_c4_val": "loss", "dataset": "family"},
    )
    assert len(df) == 104
    assert df["family"].dtype == object
    assert set(df["family"]) >= {"c4_original"}
    assert "loss_openlm" in df.columns and "loss_c4_val" not in df.columns


# --------------------------------------------------------------------------- formats


def test_csv_tsv_parquet_jsonl_json_round_trip(tmp_path):
    frames = {}
    SMALL.to_csv(tmp_path / "r.csv", index=False)
    SMALL.to_csv(tmp_path / "r.tsv", sep="\t", index=False)
    SMALL.to_parquet(tmp_path / "r.parquet", index=False)
    SMALL.to_json(tmp_path / "r.jsonl", orient="records", lines=True)
    (tmp_path / "r.json").write_text(json.dumps(SMALL.to_dict(orient="records")))
    for name in ("r.csv", "r.tsv", "r.parquet", "r.jsonl", "r.json"):
        frames[name] = load_runs(tmp_path / name, SMALL_MAP)
    reference = frames["r.csv"]
    for name, df in frames.items():
        assert df.attrs["source"] == str(tmp_path / name)
        pd.testing.assert_frame_equal(
            df[list(CANONICAL)], reference[list(CANONICAL)], check_dtype=True, obj=name
        )
        assert df["note"].tolist() == ["a", "b", "c", "d"]


def test_unknown_extension_and_missing_file(tmp_path):
    path = write(tmp_path, "runs.xlsx", "x")
    with pytest.raises(RunsError, match=re.escape(str(path)) + ".*unknown file type"):
        load_runs(path)
    missing = tmp_path / "nope.csv"
    with pytest.raises(RunsError, match=re.escape(str(missing)) + ".*not found"):
        load_runs(missing)


def test_json_must_be_list_of_records(tmp_path):
    path = write(tmp_path, "runs.json", json.dumps({"model_size": [1, 2]}))
    with pytest.raises(RunsError, match="list of records"):
        load_runs(path)


def test_empty_file_and_empty_table(tmp_path):
    with pytest.raises(RunsError, match="empty"):
        load_runs(write(tmp_path, "empty.csv", ""))
    with pytest.raises(RunsError, match=r"header_only\.csv.*no data rows"):
        load_runs(write(tmp_path, "header_only.csv", "model_size,pretrain_tokens,loss\n"))
    with pytest.raises(RunsError, match="<DataFrame>.*no data rows"):
        load_runs(SMALL.iloc[:0], SMALL_MAP)


# --------------------------------------------------------------------------- column mapping


def test_string_mapping_equals_dict_mapping():
    by_dict = load_runs(SMALL, SMALL_MAP)
    by_str = load_runs(SMALL, " N=model_size, D = pretrain_tokens,val=loss,")
    pd.testing.assert_frame_equal(by_dict, by_str)


@pytest.mark.parametrize("bad", ["N=model_size,D", "N=model_size,=loss", "N=model_size,D=pretrain_tokens=x"])
def test_malformed_string_mapping(bad):
    with pytest.raises(RunsError, match="malformed column mapping"):
        load_runs(SMALL, bad)


def test_mapping_key_absent_lists_columns(tmp_path):
    path = tmp_path / "r.csv"
    SMALL.to_csv(path, index=False)
    with pytest.raises(RunsError) as err:
        load_runs(path, {"N_params": "model_size"})
    msg = str(err.value)
    assert str(path) in msg and "'N_params'" in msg and "'N', 'D', 'val', 'note'" in msg


def test_mapping_onto_unknown_canonical_lists_allowed():
    with pytest.raises(RunsError) as err:
        load_runs(SMALL, {"N": "params"})
    msg = str(err.value)
    assert "'params'" in msg and all(name in msg for name in CANONICAL + OPTIONAL)


def test_mapping_collisions():
    with pytest.raises(RunsError, match="more than one column onto 'loss'"):
        load_runs(SMALL, {**SMALL_MAP, "note": "loss"})
    frame = SMALL.assign(loss=1.0)
    with pytest.raises(RunsError, match="already has a column"):
        load_runs(frame, SMALL_MAP)


def test_missing_required_columns_hint():
    with pytest.raises(RunsError) as err:
        load_runs(SMALL, {"N": "model_size"})
    msg = str(err.value)
    assert "<DataFrame>" in msg and "'pretrain_tokens'" in msg and "'loss'" in msg
    assert "columns=" in msg and "'val'" in msg and "flops" in msg


# --------------------------------------------------------------------------- validation


def test_non_numeric_values_named_with_rows(tmp_path):
    path = write(
        tmp_path,
        "bad.csv",
        "N,D,val\n1e8,1e9,3.0\n1e8,2e9,oops\n1e8,3e9,2.5\n1e8,4e9,n/a?\n",
    )
    with pytest.raises(RunsError) as err:
        load_runs(path, SMALL_MAP)
    msg = str(err.value)
    assert str(path) in msg
    assert "column 'loss' (your column 'val')" in msg
    assert "non-numeric values at rows 2, 4" in msg and "'oops'" in msg and "'n/a?'" in msg
    assert "(data row numbers, header excluded)" in msg


def test_missing_and_infinite_values(tmp_path):
    path = write(tmp_path, "r.csv", "model_size,pretrain_tokens,loss\n1e8,1e9,3\n1e8,,2.9\n1e8,3e9,inf\n")
    with pytest.raises(RunsError) as err:
        load_runs(path)
    msg = str(err.value)
    assert "column 'pretrain_tokens': missing (empty or NaN) values at row 2" in msg
    assert "column 'loss': infinite values at row 3" in msg


def test_all_problems_collected_and_row_list_truncated():
    n = 15
    frame = pd.DataFrame(
        {
            "model_size": [-1.0] * n,
            "pretrain_tokens": [0.0] + [1e9] * (n - 1),
            "loss": [3.0] * n,
            "spec_tokens": [-5.0] + [0.0] * (n - 1),
            "unique_tokens": [1e9] * (n - 1) + [-2.0],
            "error": [0.5] * (n - 1) + [1.5],
        }
    )
    with pytest.raises(RunsError) as err:
        load_runs(frame)
    msg = str(err.value)
    assert msg.startswith("<DataFrame>:")
    assert "column 'model_size': zero or negative values at rows 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 (and 5 more)" in msg
    assert "column 'pretrain_tokens': zero or negative values at row 1" in msg
    assert "column 'spec_tokens': negative values at row 1" in msg
    assert "column 'unique_tokens': negative values at row 15" in msg
    assert "column 'error': error rates outside [0, 1] at row 15" in msg


def test_zero_loss_rejected():
    with pytest.raises(RunsError, match=r"column 'loss' \(your column 'val'\): zero or negative values at row 3"):
        load_runs(SMALL.assign(val=[3.0, 2.0, 0.0, 1.0]), SMALL_MAP)


def test_bad_require_and_source_types():
    with pytest.raises(RunsError, match="require= names unknown"):
        load_runs(SMALL, SMALL_MAP, require=("model_size", "tokens"))
    with pytest.raises(RunsError, match="file path or a pandas DataFrame"):
        load_runs([1, 2, 3])  # type: ignore[arg-type]


# --------------------------------------------------------------------------- output shape


def test_dataframe_input_not_mutated_and_output_layout():
    frame = SMALL.copy()
    frame.index = [10, 20, 30, 40]
    before = frame.copy()
    df = load_runs(frame, SMALL_MAP)
    pd.testing.assert_frame_equal(frame, before)
    assert frame.attrs == {}
    assert list(df.columns) == [*CANONICAL, "run", "spec_domain", "cross_domain", "note"]
    assert df.index.equals(pd.RangeIndex(4))
    for col in ("model_size", "pretrain_tokens", "spec_tokens", "loss"):
        assert df[col].dtype == np.float64, col
    for col in ("domain", "spec_domain", "run"):
        assert df[col].dtype == object and all(isinstance(v, str) for v in df[col]), col
    assert df["cross_domain"].dtype == bool
    assert set(codes(df)) == {"default-spec-tokens", "default-domain", "derived-run-ids"}
    assert df["run"].tolist() == ["row1", "row2", "row3", "row4"]
    assert all(isinstance(n, RunsNote) for n in df.attrs["notes"])


def test_text_columns_read_as_text(tmp_path):
    path = write(
        tmp_path,
        "r.csv",
        "model_size,pretrain_tokens,loss,domain,family,run\n1e8,1e9,3,007,1,a\n1e8,2e9,2.9,,1,\n",
    )
    df = load_runs(path)
    assert df["domain"].tolist() == ["007", "general"]
    assert df["family"].tolist() == ["1", "1"]
    assert df["run"].tolist() == ["a", "row2"]
    assert {"default-domain", "derived-run-ids"} <= set(codes(df))
    assert next(n for n in df.attrs["notes"] if n.code == "default-domain").rows == (2,)


def test_spec_domain_and_cross_domain_defaults():
    frame = pd.DataFrame(
        {
            "model_size": [1e8] * 5,
            "pretrain_tokens": [1e9] * 5,
            "spec_tokens": [0.0, 1e8, 1e8, np.nan, 2e8],
            "domain": ["code", "code", "general", "code", "general"],
            "spec_domain": ["", "", "code", "code", None],
            "loss": [3.0, 2.5, 3.4, 3.1, 2.9],
        }
    )
    df = load_runs(frame)
    assert df["spec_tokens"].tolist() == [0.0, 1e8, 1e8, 0.0, 2e8]
    assert df["spec_domain"].tolist() == ["", "code", "code", "", "general"]
    assert df["cross_domain"].tolist() == [False, False, True, False, False]
    notes = {n.code: n for n in df.attrs["notes"]}
    assert notes["default-spec-tokens"].rows == (4,)
    assert notes["default-spec-domain"].rows == (2, 5)
    assert notes["cleared-spec-domain"].rows == (4,)  # spec_domain given but spec_tokens empty -> 0


def test_spec_domain_absent_defaults_to_domain():
    df = runs_from_arrays([1e8, 1e8], [1e9, 1e9], [3.0, 2.0], spec_tokens=[0, 5e8], domain=["law", "law"])
    assert df["spec_domain"].tolist() == ["", "law"]
    assert not df["cross_domain"].any()


def test_run_ids_from_step_column():
    frame = pd.DataFrame(
        {
            "model_size": [1e8, 1e8, 1e8, 2.5e8, 2.5e8],
            "pretrain_tokens": [1e9, 2e9, 2e9, 1e9, 2e9],
            "spec_tokens": [0, 0, 1e8, 0, 0],
            "domain": ["general", "general", "code", "general", "general"],
            "family": ["", "", "", "pythia", "pythia"],
            "step": [1, 2, 3, 1, 2],
            "loss": [3.0, 2.9, 2.0, 2.8, 2.7],
        }
    )
    df = load_runs(frame)
    assert df["run"].tolist() == ["N=100000000", "N=100000000", "N=100000000/spec=code", "pythia/N=250000000"] + [
        "pythia/N=250000000"
    ]
    assert "step" in next(n.message for n in df.attrs["notes"] if n.code == "derived-run-ids")


# --------------------------------------------------------------------------- filters


def _curves() -> pd.DataFrame:
    tokens = [1e9, 5e9, 1e10, 2e10, 4e10]
    return pd.DataFrame(
        {
            "model_size": [1e8] * 5 + [1e9] * 5,
            "pretrain_tokens": tokens * 2,
            "loss": np.linspace(3.5, 2.5, 10),
            "step": list(range(1, 6)) * 2,
        }
    )


def test_min_tokens_filter_reported():
    df = load_runs(_curves(), min_tokens=1e10)
    assert len(df) == 6 and df["pretrain_tokens"].min() == 1e10
    note = [n for n in df.attrs["notes"] if n.code == "filtered"]
    assert len(note) == 1
    assert note[0].message == "min_tokens=1e+10 (pretrain_tokens + spec_tokens < 1e+10) removed 4 of 10 rows"
    assert note[0].rows == (1, 2, 6, 7)


def test_max_token_fraction_per_run_and_where():
    df = load_runs(_curves(), max_token_fraction=0.5, where="model_size <= 1e8")
    assert df["pretrain_tokens"].tolist() == [1e9, 5e9, 1e10, 2e10]
    filtered = [n for n in df.attrs["notes"] if n.code == "filtered"]
    assert [len(n.rows) for n in filtered] == [2, 4]
    assert filtered[0].rows == (5, 10)
    assert "removed 2 of 10 rows" in filtered[0].message
    assert "where='model_size <= 1e8' removed 4 of 8 rows" == filtered[1].message


def test_bad_filters():
    with pytest.raises(RunsError, match="where= rule 'model_size <=' is not a valid expression"):
        load_runs(_curves(), where="model_size <=")
    with pytest.raises(RunsError, match="where= rule 'no_such_column > 1': unknown column 'no_such_column'"):
        load_runs(_curves(), where="no_such_column > 1")
    with pytest.raises(RunsError, match="True/False per row"):
        load_runs(_curves(), where="model_size + 1")
    with pytest.raises(RunsError, match=r"max_token_fraction= must be in \(0, 1\]"):
        load_runs(_curves(), max_token_fraction=1.5)
    with pytest.raises(RunsError, match="removed every row.*min_tokens=1e\\+12 .*removed 10 of 10"):
        load_runs(_curves(), min_tokens=1e12)


# --------------------------------------------------------------------------- summary and arrays


def test_summarize_runs_is_json_able():
    df = load_runs(_curves(), min_tokens=5e9)
    summary = summarize_runs(df)
    json.dumps(summary)
    assert summary["n_rows"] == 8
    assert summary["n_runs"] == 2
    assert summary["model_sizes"] == [1e8, 1e9] and summary["n_model_sizes"] == 2
    assert summary["pretrain_token_range"] == [5e9, 4e10]
    assert summary["spec_token_range"] == [0.0, 0.0]
    assert summary["domains"] == ["general"]
    assert summary["loss_range"][1] < 3.5
    assert summary["source"] == "<DataFrame>"
    assert {"code": "filtered", "message": df.attrs["notes"][-1].message} in summary["notes"]


def test_runs_from_arrays():
    df = runs_from_arrays(np.array([1e8, 2e8]), [1e9, 2e9], (3.0, 2.9), domain="web", family=["a", "b"], seed=[0, 1])
    assert df["domain"].tolist() == ["web", "web"]
    assert df["family"].tolist() == ["a", "b"]
    assert list(df.columns)[-1] == "seed"
    assert df.attrs["source"] == "<arrays>"
    with pytest.raises(RunsError, match="different lengths: model_size=2, pretrain_tokens=3"):
        runs_from_arrays([1e8, 2e8], [1e9, 2e9, 3e9], [3.0, 2.9])
    with pytest.raises(RunsError, match="(?s)<arrays>.*column 'loss': zero or negative values at row 2"):
        runs_from_arrays([1e8, 2e8], [1e9, 2e9], [3.0, -1.0])


# --------------------------------------------------------------------------- sanity notes (issue 9)
def _grid(n_sizes: int = 5) -> pd.DataFrame:
    sizes = np.repeat(np.geomspace(2e7, 1e9, n_sizes), 4)
    tokens = sizes * np.tile([10.0, 20.0, 40.0, 80.0], n_sizes)
    return pd.DataFrame({"model_size": sizes, "pretrain_tokens": tokens, "loss": 2.0 + 400 * sizes ** -0.3})


def _codes(df: pd.DataFrame) -> dict[str, RunsNote]:
    return {n.code: n for n in df.attrs["notes"]}


def test_clean_tables_have_no_sanity_notes():

    with warnings.catch_warnings():
        warnings.simplefilter("error", PlannerWarning)
        df = load_runs(_grid())
    assert not set(_codes(df)) & SANITY_CODES


def test_duplicated_rows_are_noted_and_warned():
    raw = pd.concat([_grid(), _grid().iloc[[2, 5]]], ignore_index=True)
    with pytest.warns(PlannerWarning, match=r"\[duplicate-rows\] rows 21, 22 repeat an earlier row"):
        df = load_runs(raw)
    assert _codes(df)["duplicate-rows"].rows == (21, 22)
    assert len(df) == 22  # kept: the note says what to do


def test_repeated_header_name_is_named(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("model_size,pretrain_tokens,loss,model_size\n1e8,2e9,3.1,2e8\n2e8,4e9,2.9,4e8\n4e8,8e9,2.7,8e8\n")
    with pytest.raises(RunsError, match=r"header names column 'model_size' 2 times \(pandas would read the copies as 'model_size.1'\)"):
        load_runs(path)
    # a repeated column planner does not read is kept under pandas' name, with a note
    path.write_text("model_size,pretrain_tokens,loss,note,note\n1e8,2e9,3.1,a,b\n2e8,4e9,2.9,c,d\n4e8,8e9,2.7,e,f\n")
    with pytest.warns(PlannerWarning, match="duplicate-columns"):
        df = load_runs(path)
    assert "note.1" in df.columns and "copies are kept as 'note.1'" in _codes(df)["duplicate-columns"].message
    # a column really named 'x.1' is not a repeat
    path.write_text("model_size,pretrain_tokens,loss,note,note.1\n1e8,2e9,3.1,a,b\n2e8,4e9,2.9,c,d\n4e8,8e9,2.7,e,f\n")
    assert "duplicate-columns" not in _codes(load_runs(path))


def test_half_the_sizes_in_billions_is_mixed_units():
    """Issue 9: a run table with half its sizes in billions gave a 'certified' N = 1,000 with no warning."""
    raw = _grid()
    billions = raw["model_size"] >= 2e8
    raw.loc[billions, "model_size"] = raw.loc[billions, "model_size"] / 1e9
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = load_runs(raw)
    assert {"[mixed-units]", "[implausible-values]"} <= {m for w in caught for m in ("[mixed-units]", "[implausible-values]") if m in str(w.message)}
    codes = _codes(df)
    assert codes["mixed-units"].rows == tuple(int(i) + 1 for i in np.flatnonzero(billions))
    assert "implausible-values" in codes and "400M parameters is 4e8" in codes["implausible-values"].message


def test_one_extreme_size_is_an_outlier():
    """Issue 9: one row with model_size = 1e300 moved N from 2.21B to 525M with no outlier warning."""
    raw = _grid()
    raw.loc[7, "model_size"] = 1e300
    with pytest.warns(PlannerWarning, match=r"\[outlier\].*row 8 \(1e\+300\)"):
        df = load_runs(raw)
    assert _codes(df)["outlier"].rows == (8,)


def test_early_checkpoints_of_a_long_run_are_not_outliers():
    """Checkpoints spread smoothly over three decades of tokens are far from the median but not isolated."""
    tokens = np.geomspace(4e9, 3e12, 60)
    raw = pd.DataFrame({"model_size": 7e9, "pretrain_tokens": tokens, "loss": 2.0 + 30 * tokens ** -0.15, "step": np.arange(60)})
    assert not set(_codes(load_runs(raw))) & SANITY_CODES


@settings(max_examples=40, deadline=None)
@given(st.floats(0.0, 1.5), st.integers(0, 19))
def test_moderate_values_are_never_flagged(decades, row):
    """A single value moved by up to 1.5 decades inside a table spanning 1.7 decades is not an outlier."""
    raw = _grid()
    raw.loc[row, "model_size"] = raw.loc[row, "model_size"] * 10 ** decades
    assert "outlier" not in _codes(load_runs(raw, warn=False))


def test_warn_false_keeps_the_notes_quiet():

    raw = pd.concat([_grid(), _grid().iloc[[0]]], ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PlannerWarning)
        df = load_runs(raw, warn=False)
    assert "duplicate-rows" in _codes(df)


def test_a_loaded_table_edited_afterwards_is_checked_again_by_fit():
    """fit() trusts load_runs' checks only while the table is unchanged (its fingerprint)."""
    import planner
    from planner.runs import table_fingerprint

    table = load_runs(Path(__file__).parent.parent / "scenarios" / "data" / "three_domain_runs.csv")
    assert table.attrs["fingerprint"] == table_fingerprint(table.copy())
    edited = table.copy()
    edited.loc[3, "loss"] = -1.0
    with pytest.raises(RunsError, match=r"column 'loss'.*row 4"):
        planner.fit(edited, "split-additive", max_starts=2)
    renamed = table.rename(columns={"loss": "loss_"})
    assert renamed.attrs.get("fingerprint") != table_fingerprint(renamed)
