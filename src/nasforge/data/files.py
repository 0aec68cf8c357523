"""Finding dataset files on disk, checksums, and (only when asked) downloading official files.

An explicit ``data_dir`` is authoritative: when the caller names a directory, only that directory
is searched (and ``download=True`` downloads into it); a miss raises
:class:`~nasforge.errors.DataNotFoundError` naming the directory and the files expected there.

Without ``data_dir`` the lookup order is ``$NASFORGE_DATA``, system-wide installs (Debian's
``dataset-fashion-mnist`` package puts Fashion-MNIST in ``/usr/share/datasets/fashion-mnist``),
then the user cache ``~/.cache/nasforge/<dataset-dir>`` (``$XDG_CACHE_HOME`` honoured). Nothing is
fetched from the network unless the caller passes ``download=True``.

Where in a directory ``D`` (``data_dir`` or ``$NASFORGE_DATA``) the files are looked for:

* IDX datasets (MNIST, Fashion-MNIST): ``D`` itself and ``D/<dataset-dir>`` (``fashion-mnist``,
  ``mnist``), gzip-compressed or not;
* CIFAR: only inside the official folder, ``D/cifar-10-batches-py`` or ``D/cifar-100-python``, or
  ``D`` itself when ``D`` *is* that folder. CIFAR-100's files are called just ``train`` and
  ``test``, so looking for them anywhere else would pick up unrelated files of that name. The
  official tarball (``cifar-10-python.tar.gz``, ``cifar-100-python.tar.gz``) found in ``D`` is read
  in place: its known batch files are extracted next to it, into that official folder (into the
  cache for ``$NASFORGE_DATA``, which may be read-only).

:func:`locate` returns the paths it resolved; :func:`~nasforge.data.dataset.load_dataset`
records them on the dataset (``ArrayDataset.source``).
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
from pathlib import Path, PurePosixPath

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


def _dirs_in(spec: DatasetSpec, base: Path) -> list[Path]:
    """Where ``spec``'s files may lie in a user-named directory ``base`` (module docstring)."""
    if spec.fmt == "cifar":
        return [base] if base.name == spec.cache_name else [base / spec.cache_name]
    return [base, base / spec.cache_name]


def _unique(paths: Sequence[Path]) -> list[Path]:
    return list(dict.fromkeys(paths))  # first occurrence kept, order kept


def candidate_dirs(spec: DatasetSpec, data_dir: str | os.PathLike[str] | None) -> list[Path]:
    """The directories searched for ``spec``'s files, in lookup order (duplicates removed).

    With ``data_dir`` only that directory (and its ``<dataset-dir>`` subfolder) is searched.
    """
    if data_dir is not None:
        return _unique(_dirs_in(spec, Path(data_dir).expanduser()))
    out: list[Path] = []
    env = os.environ.get("NASFORGE_DATA")
    if env:
        out += _dirs_in(spec, Path(env).expanduser())
    out += [Path(d) for d in spec.system_dirs]
    out.append(cache_root() / spec.cache_name)
    return _unique(out)


def _archive_places(spec: DatasetSpec, data_dir: str | os.PathLike[str] | None
                    ) -> list[tuple[Path, Path]]:
    """``(tarball path, folder to extract into)`` pairs to try for formats shipped as a tarball."""
    if spec.archive is None:
        return []
    if data_dir is not None:
        base = Path(data_dir).expanduser()
        folder = base if base.name == spec.cache_name else base / spec.cache_name
        return [(folder.parent / spec.archive.name, folder)]
    places = []
    env = os.environ.get("NASFORGE_DATA")
    if env:
        places.append((Path(env).expanduser() / spec.archive.name, cache_root() / spec.cache_name))
    places.append((cache_root() / spec.archive.name, cache_root() / spec.cache_name))
    return places


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

    With ``data_dir``, only that directory is searched and ``download=True`` downloads into it.
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
    for archive, folder in _archive_places(spec, data_dir):
        if archive.is_file():
            return _extract_archive(spec, archive, folder, split)
    if download:
        target = None if data_dir is None else _download_dir(spec, Path(data_dir).expanduser())
        return download_split(spec, split, target)
    raise DataNotFoundError(_not_found_message(spec, split, data_dir, dirs, partial))


def _download_dir(spec: DatasetSpec, base: Path) -> Path:
    """Where ``download=True`` puts the files when the user named ``base``: the official CIFAR
    folder inside it (so that lookup finds them there), else ``base`` itself."""
    return _dirs_in(spec, base)[0]


def _not_found_message(spec: DatasetSpec, split: str, data_dir: str | os.PathLike[str] | None,
                       dirs: Sequence[Path], partial: list[str]) -> str:
    names = ", ".join(f.name for f in spec.files[split])
    if data_dir is not None:
        lines = [f"{spec.info.name} ({split} split) not found in data_dir={str(data_dir)!r}: "
                 f"looked for {names} in"]
    else:
        lines = [f"{spec.info.name} ({split} split) not found: looked for {names} in"]
    lines += [f"  {d}" for d in dirs]
    if spec.archive is not None:
        lines.append(f"  (and for the tarball {spec.archive.name})")
    lines += [f"  ({p})" for p in partial]
    how = []
    if data_dir is not None:
        how.append(f"put the files in {dirs[0]}")
        how.append(f"pass download=True to fetch the official files into {dirs[0]}")
        how.append("leave data_dir unset to search $NASFORGE_DATA, system directories and "
                   f"the cache {cache_root() / spec.cache_name}")
    else:
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


def download_split(spec: DatasetSpec, split: str, target: Path | None = None) -> list[Path]:
    """Fetch the official files of one split into ``target`` (default: the user cache folder
    ``cache_root() / <dataset-dir>``), checksums verified; a tarball is saved beside ``target``."""
    target = cache_root() / spec.cache_name if target is None else target
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

    Members are matched by the official folder and their base name against the catalog
    (``cifar-10-batches-py/data_batch_1``), so a tarball can never write outside ``target`` (no
    path traversal) and unknown members are ignored. Files already in ``target`` are kept.
    """
    known: dict[str, RemoteFile] = {f.name: f for files in spec.files.values() for f in files}
    try:
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive, "r:*") as tar:
            for member in tar.getmembers():
                parts = PurePosixPath(member.name).parts
                if (len(parts) < 2 or parts[-2] != spec.cache_name or parts[-1] not in known
                        or not member.isfile() or (target / parts[-1]).is_file()):
                    continue
                src = tar.extractfile(member)
                if src is None:
                    continue
                with src, open(target / parts[-1], "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
    except (OSError, tarfile.TarError) as exc:
        raise DataNotFoundError(
            f"could not extract {archive} into {target}: {exc}; extract it yourself (its "
            f"{spec.cache_name}/ folder) or make {target.parent} writable"
        ) from None
    paths = []
    for f in spec.files[split]:
        p = target / f.name
        if not p.is_file():
            raise DataNotFoundError(
                f"{archive} does not contain {spec.cache_name}/{f.name}"
            )
        paths.append(p)
    return paths
