"""Exception types raised by nasforge.

Every error a user can trigger with bad input is a :class:`NasforgeError`, and its message names the
bad value and what is allowed, so that callers never need to read a stack trace from deep inside.
"""

from __future__ import annotations

from collections.abc import Iterable


class NasforgeError(Exception):
    """Base class of every error nasforge raises on purpose."""


class ConfigError(NasforgeError, ValueError):
    """A user-supplied value (option, name, file content) is not allowed."""


class UnknownNameError(ConfigError, KeyError):
    """A name (space, strategy, evaluator, op, dataset, ...) is not registered."""

    def __str__(self) -> str:  # KeyError would otherwise wrap the message in quotes
        return str(self.args[0]) if self.args else ""


class InvalidArchitectureError(ConfigError):
    """An architecture does not belong to the search space it is used with."""


class DataNotFoundError(NasforgeError, FileNotFoundError):
    """A dataset or benchmark file the user asked for is not where we looked."""


class StorageError(NasforgeError):
    """An experiment database cannot be used (newer schema, different experiment, corrupt)."""


class FileAccessError(NasforgeError, OSError):
    """A file or directory cannot be read or written (permissions, full disk, size limit, a file
    cut short). The message names the file and the operating system's reason."""


def file_error(exc: OSError | EOFError, path: object = None, action: str = "write") -> FileAccessError:
    """The one way an I/O failure is reported: ``cannot <action> '<file>': <cause>``.

    ``path`` defaults to the file the OS error names; the cause is the OS's own words
    ("Permission denied", "No space left on device", "File too large") or, for an EOFError, a
    file that ends too early.
    """
    name = path if path is not None else getattr(exc, "filename", None)
    if isinstance(exc, EOFError):
        cause = "the file ends too early (truncated or incomplete download)"
    else:
        cause = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    where = f" {str(name)!r}" if name is not None else ""
    return FileAccessError(f"cannot {action}{where}: {cause}")


def allowed(values: Iterable[object]) -> str:
    """Format a list of allowed values for an error message: ``'a', 'b', 'c'``."""
    return ", ".join(repr(v) for v in values)


def unknown(kind: str, name: object, choices: Iterable[object]) -> UnknownNameError:
    """Build the standard "unknown X" error that lists the allowed names."""
    return UnknownNameError(f"unknown {kind} {name!r}; allowed: {allowed(sorted(map(str, choices)))}")
