"""Ray's token authentication when joining a cluster, and what to say when joining fails.

Ray 2.5x+ ``ray start --head`` turns token authentication on when a token exists on the head
(``ray.init()`` of a local Ray writes one to ``~/.ray/auth_token``). A driver then has to run in
token mode too, which Ray itself switches on only for ``address="auto"`` (or none): a driver given
``HOST:PORT``, ``RAY_ADDRESS`` or ``ray://`` stays in the default mode and the connection fails
with a bare "Failed to connect". :func:`use_token_if_available` closes that gap: when
``RAY_AUTH_MODE`` is unset and a token is found where Ray looks for one (``RAY_AUTH_TOKEN``, the
file named by ``RAY_AUTH_TOKEN_PATH``, then ``~/.ray/auth_token``; Ray's own loader decides), it
switches this process to token mode, as Ray's ``ray start`` does.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Ray's authentication switch ("token" or "disabled"; unset: Ray's default for the situation).
AUTH_MODE_ENV = "RAY_AUTH_MODE"
TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"


def default_token_path() -> Path:
    """Where Ray keeps its token when neither environment variable names one."""
    return Path.home() / ".ray" / "auth_token"


def token_source() -> str | None:
    """Where Ray would read its token from, in Ray's own order (None: no token anywhere)."""
    if os.environ.get(TOKEN_ENV):
        return f"${TOKEN_ENV}"
    named = os.environ.get(TOKEN_PATH_ENV)
    if named:
        path = Path(named).expanduser()
        return f"${TOKEN_PATH_ENV} ({path})" if _non_empty(path) else None
    path = default_token_path()
    return str(path) if _non_empty(path) else None


def _non_empty(path: Path) -> bool:
    try:
        return bool(path.read_text().strip())
    except OSError:
        return False


def _raylet() -> Any:
    try:
        return importlib.import_module("ray._raylet")
    except ImportError:
        return None


def _ray_has_token() -> bool:
    """Ask Ray's own token loader (falls back to :func:`token_source` on a Ray without it)."""
    raylet = _raylet()
    if raylet is None or not hasattr(raylet, "AuthenticationTokenLoader"):
        return token_source() is not None
    loader = raylet.AuthenticationTokenLoader.instance()
    loader.reset_cache()  # the environment may have changed since Ray last looked
    return bool(loader.has_token(ignore_auth_mode=True))


def _refresh_ray_config() -> None:
    """Make an already imported Ray re-read ``RAY_AUTH_MODE`` (its config is cached)."""
    raylet = _raylet()
    if raylet is not None and hasattr(raylet, "Config"):
        raylet.Config.initialize("")


def use_token_if_available() -> Callable[[], None]:
    """Switch to Ray's token mode when ``RAY_AUTH_MODE`` is unset and a token exists.

    Returns the undo (restores the previous mode), called when the executor disconnects.
    An explicit ``RAY_AUTH_MODE`` (``token`` or ``disabled``) is always respected.
    """
    if os.environ.get(AUTH_MODE_ENV) is not None or not _ray_has_token():
        return lambda: None
    os.environ[AUTH_MODE_ENV] = "token"
    _refresh_ray_config()

    def undo() -> None:
        os.environ.pop(AUTH_MODE_ENV, None)
        _refresh_ray_config()

    return undo


def restore_auth_mode() -> Callable[[], None]:
    """The undo that puts ``RAY_AUTH_MODE`` back as it is now (``ray.init`` of a local Ray sets
    it to ``token`` in this process's environment)."""
    before = os.environ.get(AUTH_MODE_ENV)

    def undo() -> None:
        if os.environ.get(AUTH_MODE_ENV) == before:
            return
        if before is None:
            os.environ.pop(AUTH_MODE_ENV, None)
        else:
            os.environ[AUTH_MODE_ENV] = before
        _refresh_ray_config()

    return undo


def _fix_hint() -> str:
    return (f"copy the head node's token (`ray get-auth-token` on the head prints it) into "
            f"{default_token_path()}, or set {TOKEN_ENV}=TOKEN or {TOKEN_PATH_ENV}=FILE")


def explain_join_failure(address: str | None, exc: BaseException) -> str:
    """A message for a failed ``ray.init`` that says what went wrong and what to do."""
    where = f"Ray at {address!r}" if address else "a local Ray"
    text = str(exc).strip()
    first = text.split(". ", 1)[0] if text else type(exc).__name__
    mode = os.environ.get(AUTH_MODE_ENV)
    source = token_source()
    lowered = text.lower()
    if "no authentication token was found" in lowered or "cannot be opened or is empty" in lowered:
        return (f"cannot join {where}: the cluster uses token authentication and no token was "
                f"found ({first}); {_fix_hint()}")
    if "invalid or incorrect" in lowered or "unauthenticated" in lowered:
        return (f"cannot join {where}: the cluster refused the token from {source or 'nowhere'} "
                f"({first}); it must be the head node's token: {_fix_hint()}")
    if mode is None and source is None:
        hint = ("; if the cluster uses token authentication (`ray start --head` enables it when a "
                f"token exists on the head), {_fix_hint()}")
    elif mode == "token":
        hint = (f"; the token from {source or 'nowhere'} was sent: check that it is the head "
                f"node's token, and that the address and port are right")
    else:
        hint = "; check the address and port, and that the cluster is running"
    return f"cannot start or reach {where}: {type(exc).__name__}: {first}{hint}"
