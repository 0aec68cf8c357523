"""Dataset lookup order, errors, checksums, downloads (from a 127.0.0.1 server), IDX and CIFAR."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import io
import os
import pickle
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from nasforge.data import ChecksumError, catalog, dataset_info, list_datasets, load_dataset
from nasforge.data.catalog import RemoteFile
from nasforge.data.dataset import check_dataset_files
from nasforge.data.files import candidate_dirs, file_digest, verify_file
from nasforge.data.idx import read_idx, write_idx
from nasforge.errors import ConfigError, DataNotFoundError, FileAccessError, UnknownNameError

IDX_NAMES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def write_mnist_like(directory: Path, n: int = 20, value: int = 0, gz: bool = True,
                     split: str = "train") -> None:
    """Tiny IDX files: images filled with ``value`` so tests can tell directories apart."""
    directory.mkdir(parents=True, exist_ok=True)
    images = np.full((n, 28, 28), value, dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    img_name, lab_name = IDX_NAMES[split]
    if not gz:
        img_name, lab_name = img_name[:-3], lab_name[:-3]
    write_idx(directory / img_name, images)
    write_idx(directory / lab_name, labels)


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No $NASFORGE_DATA, a private cache dir, and no system dirs for any dataset."""
    monkeypatch.delenv("NASFORGE_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for name, spec in list(catalog.DATASETS.items()):
        monkeypatch.setitem(catalog.DATASETS, name, dataclasses.replace(
            spec, system_dirs=(str(tmp_path / "system" / spec.cache_name),)))
    return tmp_path


def test_catalog_names_and_info() -> None:
    assert {"fashion_mnist", "mnist", "cifar10", "cifar100"} <= set(list_datasets())
    assert dataset_info("Fashion-MNIST").input_shape == (1, 28, 28)
    assert dataset_info("cifar100").num_classes == 100
    with pytest.raises(UnknownNameError, match=r"imagenet.*allowed"):
        dataset_info("imagenet")


def test_idx_roundtrip_gz_and_plain(tmp_path: Path) -> None:
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for name in ("a.gz", "b"):
        write_idx(tmp_path / name, arr)
        np.testing.assert_array_equal(read_idx(tmp_path / name), arr)


def test_idx_rejects_bad_files(tmp_path: Path) -> None:
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ConfigError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big") + b"123")
    with pytest.raises(ConfigError, match="10 bytes"):
        read_idx(tmp_path / "short")


def test_lookup_order(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user, env, cache = isolated / "user", isolated / "env", isolated / "cache" / "nasforge"
    write_mnist_like(user, value=1)
    write_mnist_like(env / "mnist", value=2)  # $NASFORGE_DATA/<dataset-dir> form
    write_mnist_like(cache / "mnist", value=3)
    monkeypatch.setenv("NASFORGE_DATA", str(env))

    def first_pixel(**kw: object) -> int:
        return int(load_dataset("mnist", **kw).images[0, 0, 0, 0])  # type: ignore[arg-type]

    assert first_pixel(data_dir=user) == 1
    assert first_pixel() == 2
    monkeypatch.delenv("NASFORGE_DATA")
    assert first_pixel() == 3
    assert candidate_dirs(catalog.get_spec("fashion_mnist"), user) == [user, user / "fashion-mnist"]
    dirs = candidate_dirs(catalog.get_spec("fashion_mnist"), None)
    assert dirs[-1] == cache / "fashion-mnist"
    assert dirs[-2] == isolated / "system" / "fashion-mnist"  # the system dir comes before the cache


def test_real_system_dir_is_in_the_fashion_mnist_lookup() -> None:
    dirs = candidate_dirs(catalog.get_spec("fashion_mnist"), None)
    assert Path("/usr/share/datasets/fashion-mnist") in dirs


def test_plain_idx_files_and_shape(isolated: Path) -> None:
    write_mnist_like(isolated / "d", n=12, gz=False, split="test")
    ds = load_dataset("mnist", "test", data_dir=isolated / "d")
    assert ds.images.shape == (12, 1, 28, 28) and ds.images.dtype == torch.uint8
    assert ds.labels.tolist() == [i % 10 for i in range(12)]
    assert ds.info.num_classes == 10


def test_not_found_lists_places_and_remedies(isolated: Path) -> None:
    with pytest.raises(DataNotFoundError) as err:
        load_dataset("fashion_mnist")
    text = str(err.value)
    assert str(isolated / "cache" / "nasforge" / "fashion-mnist") in text
    assert str(isolated / "system" / "fashion-mnist") in text
    assert "apt-get install dataset-fashion-mnist" in text and "download=True" in text


def test_explicit_data_dir_is_the_only_place_searched(isolated: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # the data exists elsewhere: in $NASFORGE_DATA, the system dir and the cache
    write_mnist_like(isolated / "env", value=2)
    write_mnist_like(isolated / "system" / "mnist", value=3)
    write_mnist_like(isolated / "cache" / "nasforge" / "mnist", value=4)
    monkeypatch.setenv("NASFORGE_DATA", str(isolated / "env"))
    named = isolated / "nowhere"
    with pytest.raises(DataNotFoundError) as err:
        load_dataset("mnist", data_dir=named)
    text = str(err.value)
    assert text.startswith(f"mnist (train split) not found in data_dir={str(named)!r}: looked for "
                           "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz in")
    searched, remedies = text.split("\nTo get it: ")
    assert searched.splitlines()[1:] == [f"  {named}", f"  {named / 'mnist'}"]
    assert "download=True to fetch the official files into " + str(named) in remedies
    assert candidate_dirs(catalog.get_spec("mnist"), named) == [named, named / "mnist"]
    # without data_dir the same call finds $NASFORGE_DATA's copy, and says where it came from
    ds = load_dataset("mnist")
    assert int(ds.images[0, 0, 0, 0]) == 2
    assert ds.source_dir == isolated / "env"
    assert ds.source == (isolated / "env" / "train-images-idx3-ubyte.gz",
                         isolated / "env" / "train-labels-idx1-ubyte.gz")
    assert ds.subset([0, 1]).source_dir == isolated / "env"  # splits keep the provenance
    assert str(isolated / "env") in repr(ds)


def test_explicit_data_dir_downloads_into_it(isolated: Path, server: tuple[str, Path],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    base, root = server
    write_mnist_like(root, n=9, value=5)
    _point_mnist_at(monkeypatch, base, root)
    named = isolated / "mine"
    ds = load_dataset("mnist", data_dir=named, download=True)
    assert len(ds) == 9 and ds.source_dir == named
    assert (named / "train-images-idx3-ubyte.gz").is_file()
    assert not (isolated / "cache" / "nasforge" / "mnist").exists()  # the cache was not used


def test_partial_directory_is_reported(isolated: Path) -> None:
    d = isolated / "half"
    write_mnist_like(d)
    (d / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataNotFoundError, match=r"lacks train-labels-idx1-ubyte\.gz"):
        load_dataset("mnist", data_dir=d)


def test_mismatched_images_and_labels(isolated: Path) -> None:
    d = isolated / "bad"
    write_mnist_like(d, n=10)
    write_idx(d / "train-labels-idx1-ubyte.gz", np.zeros(7, dtype=np.uint8))
    with pytest.raises(ConfigError, match="do not match"):
        load_dataset("mnist", data_dir=d)


def test_verify_file(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"hello")
    verify_file(p, md5=hashlib.md5(b"hello").hexdigest(),
                sha256=hashlib.sha256(b"hello").hexdigest())
    with pytest.raises(ChecksumError, match="md5 is"):
        verify_file(p, md5="0" * 32)
    with pytest.raises(ChecksumError, match="sha256 is"):
        verify_file(p, sha256="0" * 64)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTP server on 127.0.0.1 serving ``tmp_path/served``."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", root
    finally:
        httpd.shutdown()
        httpd.server_close()


def _point_mnist_at(monkeypatch: pytest.MonkeyPatch, base: str, root: Path,
                    corrupt: str | None = None) -> None:
    spec = catalog.DATASETS["mnist"]
    files = {}
    for split, remotes in spec.files.items():
        if split != "train":
            continue
        files[split] = tuple(
            RemoteFile(r.name, "0" * 32 if r.name == corrupt else file_digest(root / r.name),
                       (base + "missing/" + r.name, base + r.name))  # first URL 404s: falls back
            for r in remotes
        )
    monkeypatch.setitem(catalog.DATASETS, "mnist", dataclasses.replace(spec, files=files))


def test_download_verifies_and_caches(isolated: Path, server: tuple[str, Path],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    base, root = server
    write_mnist_like(root, n=15, value=7)
    _point_mnist_at(monkeypatch, base, root)
    with pytest.raises(DataNotFoundError):
        load_dataset("mnist")  # nothing is fetched unless asked
    ds = load_dataset("mnist", download=True)
    assert len(ds) == 15 and int(ds.images.max()) == 7
    cached = isolated / "cache" / "nasforge" / "mnist" / "train-images-idx3-ubyte.gz"
    assert cached.is_file()
    assert len(load_dataset("mnist")) == 15  # found in the cache afterwards


def test_download_rejects_bad_checksum(isolated: Path, server: tuple[str, Path],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    base, root = server
    write_mnist_like(root, n=5)
    _point_mnist_at(monkeypatch, base, root, corrupt="train-labels-idx1-ubyte.gz")
    with pytest.raises(DataNotFoundError, match="md5 is"):
        load_dataset("mnist", download=True)
    leftovers = list((isolated / "cache" / "nasforge" / "mnist").glob("*labels*"))
    assert leftovers == []  # the bad file is not kept


def write_cifar_batch(path: Path, n: int, value: int, labels_key: bytes = b"labels",
                      protocol: int = 2, batch_label: bytes = b"test") -> None:
    data = np.full((n, 3072), value, dtype=np.uint8)
    batch = {b"batch_label": batch_label, labels_key: [i % 10 for i in range(n)], b"data": data,
             b"filenames": [b"x.png"] * n}
    path.write_bytes(pickle.dumps(batch, protocol=protocol))


def test_cifar_batches_load_with_checks(isolated: Path) -> None:
    d = isolated / "cifar" / "cifar-10-batches-py"
    d.mkdir(parents=True)
    for i in range(1, 6):
        write_cifar_batch(d / f"data_batch_{i}", 4, i, protocol=2 if i % 2 else 5)
    write_cifar_batch(d / "test_batch", 3, 9)
    # The user's own batches in the official layout load as they are (no official checksum).
    ds = load_dataset("cifar10", data_dir=isolated / "cifar")
    assert ds.images.shape == (20, 3, 32, 32)
    assert ds.images[:, 0, 0, 0].tolist() == [1] * 4 + [2] * 4 + [3] * 4 + [4] * 4 + [5] * 4
    assert ds.info.augment == "crop_flip"
    (d / "data_batch_3").unlink()
    with pytest.raises(DataNotFoundError, match="lacks data_batch_3"):
        load_dataset("cifar10", data_dir=isolated / "cifar", verify=False)


def test_files_claiming_to_be_official_are_checksummed(isolated: Path) -> None:
    """Official name, 10,000 images and an official batch_label: the published MD5 must match."""
    d = isolated / "cifar" / "cifar-10-batches-py"
    d.mkdir(parents=True)
    for i in range(1, 6):
        write_cifar_batch(d / f"data_batch_{i}", 4, i)
    write_cifar_batch(d / "test_batch", 10000, 9, batch_label=b"testing batch 1 of 1")
    with pytest.raises(ChecksumError, match=r"test_batch: md5 is .*taken for the official "
                       r"download; it is corrupt .* give it another batch_label"):
        load_dataset("cifar10", "test", data_dir=isolated / "cifar")
    assert len(load_dataset("cifar10", "test", data_dir=isolated / "cifar", verify=False)) == 10000
    with pytest.raises(ChecksumError, match="test_batch"):  # before a search starts, too
        check_dataset_files("cifar10", "test", isolated / "cifar")
    check_dataset_files("cifar10", "train", isolated / "cifar")
    (d / "data_batch_2").write_bytes((d / "data_batch_2").read_bytes()[:100])
    with pytest.raises(FileAccessError, match=r"cannot read the dataset file .*data_batch_2.*ends "
                       "too early"):
        check_dataset_files("cifar10", "train", isolated / "cifar")


def test_cifar100_fine_labels(isolated: Path) -> None:
    d = isolated / "c100" / "cifar-100-python"
    d.mkdir(parents=True)
    write_cifar_batch(d / "test", 5, 0, labels_key=b"fine_labels")
    for data_dir in (isolated / "c100", d):  # the parent, or the official folder itself
        ds = load_dataset("cifar100", "test", data_dir=data_dir, verify=False)
        assert ds.labels.tolist() == [0, 1, 2, 3, 4] and ds.info.num_classes == 100
        assert ds.source == (d / "test",)


def test_cifar_files_are_only_looked_for_in_the_official_folder(
        isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = isolated / "env"
    env.mkdir()
    (env / "train").write_text("an unrelated file that happens to be called train\n")
    (env / "test").write_text("another one\n")
    monkeypatch.setenv("NASFORGE_DATA", str(env))
    spec = catalog.get_spec("cifar100")
    assert candidate_dirs(spec, None)[0] == env / "cifar-100-python"
    assert env not in candidate_dirs(spec, None)
    with pytest.raises(DataNotFoundError, match="cifar-100-python"):
        load_dataset("cifar100")  # not a ChecksumError about env/train
    with pytest.raises(DataNotFoundError, match=r"looked for test in\n  .*cifar-100-python"):
        load_dataset("cifar100", "test", data_dir=env)
    official = env / "cifar-100-python"
    official.mkdir()
    write_cifar_batch(official / "train", 4, 1, labels_key=b"fine_labels")
    ds = load_dataset("cifar100", verify=False)
    assert len(ds) == 4 and ds.source == (official / "train",)


def test_cifar_unpickler_refuses_code(isolated: Path) -> None:
    d = isolated / "evil" / "cifar-10-batches-py"
    d.mkdir(parents=True)

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, ("echo pwned",))

    (d / "test_batch").write_bytes(pickle.dumps({b"data": Evil()}))
    with pytest.raises(ConfigError, match="refusing to load global"):
        load_dataset("cifar10", "test", data_dir=d, verify=False)


def test_cifar_archive_is_extracted_beside_it(isolated: Path) -> None:
    src = isolated / "src"
    src.mkdir()
    write_cifar_batch(src / "test_batch", 6, 4)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(src / "test_batch", arcname="cifar-10-batches-py/test_batch")
        tar.add(src / "test_batch", arcname="../../escape")  # unknown names are ignored
    d = isolated / "dl"
    d.mkdir()
    (d / "cifar-10-python.tar.gz").write_bytes(buf.getvalue())
    ds = load_dataset("cifar10", "test", data_dir=d, verify=False)
    assert len(ds) == 6
    assert ds.source == (d / "cifar-10-batches-py" / "test_batch",)
    assert not (isolated / "cache").exists()  # a named directory is not mixed with the cache
    assert not (isolated / "escape").exists()


def test_real_fashion_mnist_test_split(fashion_mnist_dir: Path) -> None:
    ds = load_dataset("fashion_mnist", "test", data_dir=fashion_mnist_dir)
    assert ds.images.shape == (10000, 1, 28, 28) and ds.images.dtype == torch.uint8
    assert sorted(ds.labels.unique().tolist()) == list(range(10))
    assert torch.bincount(ds.labels).tolist() == [1000] * 10
