"""Reading benchmark pickles without running code from them.

NATS-Bench ships its tables as bz2-compressed pickles. A pickle can name any importable callable and
have it called while loading, so ``pickle.load`` on a downloaded file is arbitrary code execution.
:class:`SafeUnpickler` refuses every class reference except the few plain containers and numeric
scalar types the benchmark files use, and even those are rebuilt by our own code: numpy scalars come
back as Python floats/ints, dtypes only for plain numeric types.
"""

from __future__ import annotations

import bz2
import collections
import io
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from nasforge.errors import ConfigError, DataNotFoundError

#: Largest decompressed size we accept for one file (the biggest official file is a few MB); a
#: "bz2 bomb" that expands further is refused instead of filling memory.
MAX_DECOMPRESSED_BYTES = 256 * 1024 * 1024

# dtype names a numeric scalar may carry (numpy pickles scalars as ``scalar(dtype, raw_bytes)``).
_NUMERIC_DTYPES = frozenset(
    f"{kind}{size}" for kind, sizes in (("f", (2, 4, 8)), ("i", (1, 2, 4, 8)), ("u", (1, 2, 4, 8)))
    for size in sizes
) | {"b1"}


class UnsafePickleError(ConfigError):
    """A pickle refers to a class or function that is not on the allow-list."""


def _safe_dtype(name: object, align: object = False, copy: object = False) -> np.dtype[Any]:
    """Rebuild ``numpy.dtype(name)`` only for plain numeric types."""
    if not isinstance(name, str) or name not in _NUMERIC_DTYPES:
        raise UnsafePickleError(
            f"refusing numpy dtype {name!r} in a pickle; only numeric dtypes are allowed: "
            + ", ".join(sorted(_NUMERIC_DTYPES))
        )
    return np.dtype(name)


def _safe_scalar(dtype: object, data: object = None) -> float | int | bool:
    """Rebuild a numpy scalar from its raw bytes as a plain Python number."""
    if not isinstance(dtype, np.dtype) or dtype.kind not in "fiub":
        raise UnsafePickleError(f"refusing numpy scalar of dtype {dtype!r} in a pickle")
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise UnsafePickleError(f"malformed numpy scalar payload for dtype {dtype}")
    value: float | int | bool = np.frombuffer(data, dtype=dtype)[0].item()
    return value


def _ordered_dict(*args: Any) -> collections.OrderedDict[Any, Any]:
    """``collections.OrderedDict`` as pickles rebuild it (no arguments, then items are set)."""
    if args and not (len(args) == 1 and isinstance(args[0], (list, tuple))):
        raise UnsafePickleError("malformed OrderedDict in a pickle")
    return collections.OrderedDict(*args)


# (module, name) -> what we hand the unpickler instead of the real object. numpy moved its scalar
# constructor from numpy.core to numpy._core in 2.0, so files written by either are accepted.
_ALLOWED: dict[tuple[str, str], Callable[..., Any]] = {
    ("collections", "OrderedDict"): _ordered_dict,
    ("numpy", "dtype"): _safe_dtype,
    ("numpy.core.multiarray", "scalar"): _safe_scalar,
    ("numpy._core.multiarray", "scalar"): _safe_scalar,
}


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that only knows plain data: builtin containers and numbers, ``OrderedDict``
    and numeric numpy scalars (returned as Python numbers). Any other class reference raises
    :class:`UnsafePickleError` before anything is imported or called."""

    def find_class(self, module: str, name: str) -> Any:
        factory = _ALLOWED.get((module, name))
        if factory is None:
            raise UnsafePickleError(
                f"refusing to load {module}.{name} from a pickle: benchmark files may only hold "
                "plain data (dicts, lists, numbers, strings)"
            )
        return factory

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("refusing a pickle with persistent references")


def _read_bz2(path: Path) -> bytes:
    """Decompress ``path`` with a size cap."""
    out = io.BytesIO()
    try:
        with bz2.open(path, "rb") as fh:
            while True:
                chunk = fh.read(1 << 20)
                if not chunk:
                    break
                out.write(chunk)
                if out.tell() > MAX_DECOMPRESSED_BYTES:
                    raise ConfigError(
                        f"{str(path)!r} decompresses to more than {MAX_DECOMPRESSED_BYTES} bytes; "
                        "refusing it (not a NATS-Bench file?)"
                    )
    except FileNotFoundError:
        raise DataNotFoundError(f"benchmark file {str(path)!r} does not exist") from None
    except (OSError, EOFError) as exc:
        raise ConfigError(f"{str(path)!r} is not a readable bz2 file: {exc}") from None
    return out.getvalue()


def load_pickle_bz2(path: str | Path) -> Any:
    """Load a bz2-compressed pickle of plain data with :class:`SafeUnpickler`."""
    p = Path(path)
    data = _read_bz2(p)
    try:
        return SafeUnpickler(io.BytesIO(data)).load()
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{str(p)!r}: {exc}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError) as exc:
        raise ConfigError(f"{str(p)!r} is not a valid benchmark pickle: {exc}") from None


__all__ = ["MAX_DECOMPRESSED_BYTES", "SafeUnpickler", "UnsafePickleError", "load_pickle_bz2"]
