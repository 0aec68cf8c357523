"""Finding dataset files on disk, checksums, and (only when asked) downloading official files.

Lookup order for a named dataset: the directory the user gives, ``$NASFORGE_DATA`` (and
``$NASFORGE_DATA/<dataset-dir>``), system-wide installs (Debian's ``dataset-fashion-mnist`` package
puts Fashion-MNIST in ``/usr/share/datasets/fashion-mnist``), then the user cache
``~/.cache/nasforge/<dataset-dir>`` (``$XDG_CACHE_HOME`` honoured). Nothing is fetched from the
network unless the caller passes ``download=True``. A CIFAR tarball found in a searched directory
(``cifar-10-python.tar.gz``) is read in place: its known batch files are extracted to the cache.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from nasforge.data.catalog import DatasetSpec, RemoteFile
from nasforge.errors import ConfigError, DataNotFoundError, NasforgeError


class ChecksumError(NasforgeError):
    """A dataset file's digest differs from the published one (corrupt or a different file)."""


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/nasforge`` or ``~/.cache/nasforge``: where downloads go."""
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "nasforge"


def file_digest(path: Path, algorithm: str = "md5") -> str:
    """Hex digest of a file, read in 1 MiB blocks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_file(path: Path, md5: str | None = None, sha256: str | None = None) -> None:
    """Raise :class:`ChecksumError` naming the file when a given digest does not match."""
    for algo, expected in (("md5", md5), ("sha256", sha256)):
        if expected is None:
            continue
        got = file_digest(path, algo)
        if got.lower() != expected.lower():
            raise ChecksumError(
                f"{path}: {algo} is {got}, expected {expected}; the file is corrupt or not the "
                "official one (delete it and download again)"
            )


def candidate_dirs(spec: DatasetSpec, data_dir: str | os.PathLike[str] | None) -> list[Path]:
    """The directories searched for ``spec``'s files, in lookup order (duplicates removed)."""
    out: list[Path] = []
    if data_dir is not None:
        base = Path(data_dir).expanduser()
        out += [base, base / spec.cache_name]
    env = os.environ.get("NASFORGE_DATA")
    if env:
        base = Path(env).expanduser()
        out += [base, base / spec.cache_name]
    out += [Path(d) for d in spec.system_dirs]
    out.append(cache_root() / spec.cache_name)
    seen: set[Path] = set()
    unique = []
    for p in out:
        if p not in seen:
            seen.add(p)
            unique.append(p)
    return unique


def find_file(directory: Path, name: str) -> Path | None:
    """``name`` in ``directory``, accepting the gzip-compressed or the plain form of IDX files."""
    plain = name[:-3] if name.endswith(".gz") else name
    for candidate in (directory / name, directory / plain, directory / (plain + ".gz")):
        if candidate.is_file():
            return candidate
    return None


def locate(
    spec: DatasetSpec,
    split: str,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
) -> list[Path]:
    """Paths of the files of one split (``"train"``/``"test"``), found or downloaded.

    Raises :class:`DataNotFoundError` that lists every directory searched and how to get the data.
    """
    if split not in spec.files:
        raise ConfigError(
            f"dataset {spec.info.name!r} has no split {split!r}; allowed: 'train', 'test'"
        )
    wanted = spec.files[split]
    dirs = candidate_dirs(spec, data_dir)
    partial: list[str] = []
    for d in dirs:
        found = [find_file(d, f.name) for f in wanted]
        if all(p is not None for p in found):
            return [p for p in found if p is not None]
        have = [f.name for f, p in zip(wanted, found) if p is not None]
        if have:
            missing = [f.name for f, p in zip(wanted, found) if p is None]
            partial.append(f"{d} has {', '.join(have)} but lacks {', '.join(missing)}")
        if spec.archive is not None and (d / spec.archive.name).is_file():
            target = cache_root() / spec.cache_name
            return _extract_archive(spec, d / spec.archive.name, target, split)
    if download:
        return download_split(spec, split)
    raise DataNotFoundError(_not_found_message(spec, split, dirs, partial))


def _not_found_message(
    spec: DatasetSpec, split: str, dirs: Sequence[Path], partial: list[str]
) -> str:
    names = ", ".join(f.name for f in spec.files[split])
    lines = [f"{spec.info.name} ({split} split) not found: looked for {names} in"]
    lines += [f"  {d}" for d in dirs]
    lines += [f"  ({p})" for p in partial]
    how = []
    if spec.apt_package:
        how.append(f"`apt-get install {spec.apt_package}`")
    how.append("pass data_dir=... (or set $NASFORGE_DATA) to a directory holding the files")
    how.append(
        f"pass download=True to fetch the official files into {cache_root() / spec.cache_name}"
    )
    lines.append("To get it: " + "; or ".join(how))
    return "\n".join(lines)


def _fetch(urls: Sequence[str], dest: Path, md5: str) -> None:
    """Download the first URL that works into ``dest`` (atomically) and check its MD5."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in urls:
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
                shutil.copyfileobj(resp, out, 1 << 20)
            verify_file(tmp, md5=md5)
            tmp.replace(dest)
            return
        except (urllib.error.URLError, OSError, ChecksumError) as exc:
            errors.append(f"{url}: {exc}")
        finally:
            if tmp.exists():
                tmp.unlink()
    raise DataNotFoundError(f"could not download {dest.name}:\n  " + "\n  ".join(errors))


def download_split(spec: DatasetSpec, split: str) -> list[Path]:
    """Fetch the official files of one split into the user cache (checksums verified)."""
    target = cache_root() / spec.cache_name
    if spec.archive is not None:
        archive = target.parent / spec.archive.name
        if not (archive.is_file() and file_digest(archive) == spec.archive.md5):
            _fetch(spec.archive.urls, archive, spec.archive.md5)
        return _extract_archive(spec, archive, target, split)
    out = []
    for f in spec.files[split]:
        dest = target / f.name
        if not (dest.is_file() and file_digest(dest) == f.md5):
            _fetch(f.urls, dest, f.md5)
        out.append(dest)
    return out


def _extract_archive(spec: DatasetSpec, archive: Path, target: Path, split: str) -> list[Path]:
    """Extract only the known member files of an official tarball into ``target``.

    Members are matched by their base name against the catalog, so a tarball can never write
    outside ``target`` (no path traversal) and unknown members are ignored.
    """
    known: dict[str, RemoteFile] = {f.name: f for files in spec.files.values() for f in files}
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:*") as tar:
        for member in tar.getmembers():
            base = Path(member.name).name
            if base not in known or not member.isfile() or (target / base).is_file():
                continue
            src = tar.extractfile(member)
            if src is None:
                continue
            with src, open(target / base, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
    paths = []
    for f in spec.files[split]:
        p = target / f.name
        if not p.is_file():
            raise DataNotFoundError(f"{archive} does not contain {f.name}")
        paths.append(p)
    return paths
