"""NAS-Bench-201 table: CSV and official-format loading, queries, costs, safety and errors."""

from __future__ import annotations

import bz2
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

import nasforge
from nasforge.benchmarks import NB201Table, UnsafePickleError, load_pickle_bz2
from nasforge.benchmarks.nb201 import resolve_path
from nasforge.errors import ConfigError, DataNotFoundError, InvalidArchitectureError

BEST = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
        "+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|")


@pytest.fixture(scope="module")
def table(nb201_dir: Path) -> NB201Table:
    return NB201Table.load(nb201_dir)


@pytest.fixture(scope="module")
def official(nb201_dir: Path) -> NB201Table:
    sample = nb201_dir / "official-format-sample"
    if not sample.is_dir():
        pytest.skip("the official-format sample is not beside nb201.csv")
    return NB201Table.load(sample)


def test_csv_loads_every_architecture(table: NB201Table) -> None:
    assert len(table) == 15_625
    assert table.format == "csv"
    assert table.datasets() == {"cifar10": (12, 200), "cifar100": (12,), "imagenet16": (12,)}
    assert table.has_cost("cifar10") and not table.has_cost("cifar100")


def test_load_is_cached_per_path(nb201_dir: Path, table: NB201Table) -> None:
    assert NB201Table.load(nb201_dir) is table
    assert NB201Table.load(nb201_dir / "nb201.csv") is table


def test_known_row_6111(table: NB201Table) -> None:
    rec = table.query(6111, "cifar10", 12)
    assert rec.arch == BEST
    assert rec.test_acc == pytest.approx(94.3733)
    assert rec.params_m == pytest.approx(1.073466)
    assert rec.params == 1_073_466
    assert rec.test_epochs == 200
    # The best test accuracy of the whole table, and index 6111 is where it is.
    test = table.column("cifar10_test_acc_200")
    assert int(np.argmax(test)) == 6111 and test.max() == pytest.approx(94.3733)
    assert table.query(6111, "cifar10", 200).val_acc == pytest.approx(91.6067)
    assert table.column("cifar10_valid_val_acc_200").max() == pytest.approx(91.6067)


def test_cost_is_epochs_times_epoch_time_plus_one_validation_pass(table: NB201Table) -> None:
    row = 1  # nb201.csv: 10.8482 s per epoch, 3.7542 s validation
    rec12 = table.query(row, "cifar10", 12)
    rec200 = table.query(row, "cifar10", 200)
    assert rec12.train_time_per_epoch == pytest.approx(10.8482)
    assert rec12.val_time == pytest.approx(3.7542)
    assert rec12.cost == pytest.approx(12 * 10.8482 + 3.7542)
    assert rec200.cost == pytest.approx(200 * 10.8482 + 3.7542)
    assert rec12.val_acc == pytest.approx(82.834)  # cifar10_valid_val_acc_12
    assert rec12.test_acc == pytest.approx(93.66)  # cifar10_test_acc_200, whatever the fidelity


def test_other_datasets_report_their_own_columns(table: NB201Table) -> None:
    rec = table.query(0, "CIFAR-100", 12)
    assert (rec.dataset, rec.val_acc, rec.test_acc) == ("cifar100", 31.84, 31.26)
    assert rec.test_epochs == 12
    assert rec.cost is None  # the CSV has no CIFAR-100 training times
    # 90 more classes on a 64-channel linear classifier: 90 * 65 parameters more.
    assert rec.params_m == pytest.approx(0.129306 + 90 * 65e-6)
    img = table.query(0, "imagenet16", 12)
    assert (img.val_acc, img.test_acc) == (pytest.approx(18.4667), pytest.approx(17.0))


def test_index_string_round_trip(table: NB201Table) -> None:
    space = nasforge.create_space("nb201")
    rng = np.random.default_rng(0)
    for i in rng.integers(0, len(table), size=50):
        text = table.arch_string(int(i))
        assert table.index_of(text) == i
        assert table.index_of(space.from_string(text)) == i
        assert space.to_string(space.from_string(text)) == text
    assert table.index_of(BEST) == 6111


def test_arrays_match_queries(table: NB201Table) -> None:
    arr = table.arrays("cifar10", 12)
    for i in (0, 1, 6111, 15_624):
        rec = table.query(i)
        assert arr.signal[i] == rec.val_acc
        assert arr.test[i] == rec.test_acc
        assert arr.cost[i] == pytest.approx(rec.cost)
        assert arr.params_m[i] == rec.params_m
    assert arr.signal.shape == (15_625,) and not np.isnan(arr.signal).any()


def test_official_sample_agrees_with_the_csv(official: NB201Table, table: NB201Table) -> None:
    assert official.format == "nats"
    assert np.flatnonzero(official.present).tolist() == [0, 11, 284]
    # the official files hold more than the CSV: 200-epoch results for every dataset
    assert official.datasets() == {ds: (12, 200) for ds in ("cifar10", "cifar100", "imagenet16")}
    for i in (0, 11, 284):
        assert official.arch_string(i) == table.arch_string(i)
        for fid in (12, 200):
            a, b = official.query(i, "cifar10", fid), table.query(i, "cifar10", fid)
            assert a.val_acc == pytest.approx(b.val_acc, abs=1e-3)
            assert a.test_acc == pytest.approx(b.test_acc, abs=1e-3)
            assert a.train_time_per_epoch == pytest.approx(b.train_time_per_epoch, abs=1e-3)
            assert a.val_time == pytest.approx(b.val_time, abs=1e-3)
            assert a.cost == pytest.approx(b.cost, rel=1e-5)
        for ds in ("cifar10", "cifar100", "imagenet16"):
            a, b = official.query(i, ds, 12), table.query(i, ds, 12)
            assert a.val_acc == pytest.approx(b.val_acc, abs=1e-3)
            assert a.params_m == pytest.approx(b.params_m, abs=1e-9)
        for col in ("cifar10_test_acc_12", "cifar100_test_acc_12", "imagenet16_test_acc_12",
                    "cifar10_valid_test_acc_200"):
            assert official.column(col)[i] == pytest.approx(table.column(col)[i], abs=1e-3)
    assert official.query(0).flops_m == pytest.approx(15.64737)
    assert official.query(11).flops_m == pytest.approx(113.95137)
    assert official.query(284).flops_m == pytest.approx(11.71521)


def test_official_sample_found_from_any_level(nb201_dir: Path) -> None:
    sample = nb201_dir / "official-format-sample"
    if not sample.is_dir():
        pytest.skip("the official-format sample is not beside nb201.csv")
    inner = sample / "NATS-tss-v1_0-3ffb9-simple"
    assert resolve_path(sample) == (inner, "nats")
    assert resolve_path(inner) == (inner, "nats")
    assert resolve_path(inner / "meta.pickle.pbz2") == (inner, "nats")


def test_official_missing_architecture_is_a_clear_error(official: NB201Table) -> None:
    with pytest.raises(DataNotFoundError, match=r"index 5 .*3 of 15625"):
        official.query(5)


def test_bad_dataset_fidelity_arch(table: NB201Table) -> None:
    with pytest.raises(ConfigError, match=r"unknown NAS-Bench-201 dataset 'mnist'.*'cifar10'"):
        table.query(0, "mnist")
    with pytest.raises(ConfigError, match=r"'cifar100' at fidelity 200; available: cifar10 at 12"):
        table.query(0, "cifar100", 200)
    with pytest.raises(ConfigError, match="fidelity 13"):
        table.query(0, "cifar10", 13)
    with pytest.raises(ConfigError, match="whole number"):
        table.query(0, "cifar10", 12.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidArchitectureError, match="not a NAS-Bench-201 architecture string"):
        table.index_of("|conv~0|+|x~0|y~1|+|a~0|b~1|c~2|")
    with pytest.raises(ConfigError, match="out of range"):
        table.index_of(15_625)
    other = nasforge.Architecture("darts", {"x": 1})
    with pytest.raises(InvalidArchitectureError, match="space 'nb201'"):
        table.index_of(other)
    with pytest.raises(ConfigError, match="no column"):
        table.column("nope")


def test_path_resolution_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NASFORGE_NB201", raising=False)
    with pytest.raises(DataNotFoundError, match=r"\$NASFORGE_NB201"):
        NB201Table.load()
    with pytest.raises(DataNotFoundError, match=r"looked for:.*nb201\.csv"):
        NB201Table.load(tmp_path)
    with pytest.raises(DataNotFoundError, match="nowhere"):
        NB201Table.load(tmp_path / "nowhere")
    monkeypatch.setenv("NASFORGE_NB201", str(tmp_path / "missing"))
    with pytest.raises(DataNotFoundError, match=r"missing.*\$NASFORGE_NB201"):
        NB201Table.load()
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match="neither a CSV"):
        NB201Table.load(tmp_path / "notes.txt")


def test_env_var_is_used(
    nb201_dir: Path, monkeypatch: pytest.MonkeyPatch, table: NB201Table
) -> None:
    monkeypatch.setenv("NASFORGE_NB201", str(nb201_dir))
    assert NB201Table.load() is table


def test_malformed_csv(tmp_path: Path) -> None:
    bad = tmp_path / "a.csv"
    bad.write_text("index,arch,x\n0,|a~0|,hello\n")
    with pytest.raises(ConfigError, match="column 'x' is not numeric"):
        NB201Table.load(bad)
    bad.write_text("arch,x\n|a~0|,1\n")
    with pytest.raises(ConfigError, match="lacks column"):
        NB201Table.load(bad)
    bad.write_text("index,arch,x\n1,|a~0|,1\n")
    with pytest.raises(ConfigError, match="'index' column"):
        NB201Table.load(bad)
    bad.write_text("index,arch,x\n0,|a~0|\n")
    with pytest.raises(ConfigError, match="line 2 has 2 fields"):
        NB201Table.load(bad)
    bad.write_text("index,arch,x\n0,|a~0|,\n1,|b~0|,2.5\n")  # an empty field is a missing value
    small = NB201Table.load(bad)
    assert np.isnan(small.column("x")[0]) and small.column("x")[1] == 2.5
    assert small.index_of("|b~0|") == 1


# ---------------------------------------------------------------------------------- pickle safety
class _Evil:
    """Unpickling this with the standard unpickler would create ``marker`` (code execution)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def _write_pbz2(path: Path, obj: object) -> None:
    path.write_bytes(bz2.compress(pickle.dumps(obj, protocol=4)))


def test_malicious_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    nats = tmp_path / "NATS-tss-v1_0-3ffb9-simple"
    nats.mkdir()
    _write_pbz2(nats / "meta.pickle.pbz2", {"meta_archs": [_Evil(marker)]})
    with pytest.raises(UnsafePickleError, match=r"posix\.system|os\.system"):
        NB201Table.load(tmp_path)
    assert not marker.exists()


def test_malicious_architecture_file_is_refused(tmp_path: Path, official: NB201Table) -> None:
    marker = tmp_path / "pwned"
    nats = tmp_path / "nats"
    nats.mkdir()
    archs = [official.arch_string(i) for i in range(15_625)]
    _write_pbz2(nats / "meta.pickle.pbz2", {"meta_archs": archs, "total_archs": len(archs)})
    evil = {"12": {"all_results": {("cifar10-valid", 1): _Evil(marker)}}}
    _write_pbz2(nats / "000000.pickle.pbz2", evil)
    with pytest.raises(UnsafePickleError, match="refusing"):
        NB201Table.load(nats)
    assert not marker.exists()


def test_safe_unpickler_allows_plain_data_and_numeric_scalars(tmp_path: Path) -> None:
    from collections import OrderedDict

    path = tmp_path / "ok.pbz2"
    data = {"a": [1, 2.5, "x", None, True], "b": OrderedDict(c=np.float64(3.25)),
            "s": {1}, "t": (1,)}
    _write_pbz2(path, data)
    out = load_pickle_bz2(path)
    assert out == {"a": [1, 2.5, "x", None, True], "b": {"c": 3.25}, "s": {1}, "t": (1,)}
    assert type(out["b"]["c"]) is float  # numpy scalars come back as plain Python numbers
    _write_pbz2(path, np.arange(3))  # arrays need numpy's reconstructor: not on the allow-list
    with pytest.raises(UnsafePickleError):
        load_pickle_bz2(path)
    _write_pbz2(path, np.dtype(object))  # object dtypes could smuggle arbitrary objects
    with pytest.raises(UnsafePickleError, match="only numeric dtypes"):
        load_pickle_bz2(path)
    path.write_bytes(b"not bz2")
    with pytest.raises(ConfigError, match="bz2"):
        load_pickle_bz2(path)
