"""Joining a Ray cluster under token authentication: where the token is found, when the token
mode is switched on, and what a failed join says (fast: no cluster is started)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nasforge.experiment import ray_auth
from nasforge.experiment.ray_executor import death_reason


@pytest.fixture()
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for var in (ray_auth.AUTH_MODE_ENV, ray_auth.TOKEN_ENV, ray_auth.TOKEN_PATH_ENV):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_token_source_follows_rays_order(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert ray_auth.token_source() is None
    default = clean_env / ".ray" / "auth_token"
    default.parent.mkdir()
    default.write_text("abc")
    assert ray_auth.token_source() == str(default)
    named = clean_env / "tok"
    monkeypatch.setenv(ray_auth.TOKEN_PATH_ENV, str(named))
    assert ray_auth.token_source() is None  # the named file wins, and it is missing
    named.write_text("xyz\n")
    assert ray_auth.token_source() == f"${ray_auth.TOKEN_PATH_ENV} ({named})"
    monkeypatch.setenv(ray_auth.TOKEN_ENV, "t0ken")
    assert ray_auth.token_source() == f"${ray_auth.TOKEN_ENV}"


def test_token_mode_switched_on_only_when_a_token_exists(clean_env: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ray")
    undo = ray_auth.use_token_if_available()
    assert ray_auth.AUTH_MODE_ENV not in os.environ  # no token anywhere: Ray's default stays
    undo()
    monkeypatch.setenv(ray_auth.TOKEN_ENV, "a" * 32)
    undo = ray_auth.use_token_if_available()
    assert os.environ[ray_auth.AUTH_MODE_ENV] == "token"
    undo()
    assert ray_auth.AUTH_MODE_ENV not in os.environ
    monkeypatch.setenv(ray_auth.AUTH_MODE_ENV, "disabled")  # an explicit choice is respected
    ray_auth.use_token_if_available()()
    assert os.environ[ray_auth.AUTH_MODE_ENV] == "disabled"


def test_failed_join_says_what_to_do(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = RuntimeError("Token authentication is enabled but no authentication token was "
                           "found. Ensure that the token ...")
    text = ray_auth.explain_join_failure("127.0.0.1:6379", missing)
    assert "no token was found" in text and "RAY_AUTH_TOKEN" in text
    assert "ray get-auth-token" in text
    refused = ConnectionError("Failed to connect to Ray cluster at 127.0.0.1:6379")
    text = ray_auth.explain_join_failure("127.0.0.1:6379", refused)
    assert "'127.0.0.1:6379'" in text and "token authentication" in text  # no token: maybe that
    monkeypatch.setenv(ray_auth.AUTH_MODE_ENV, "token")
    monkeypatch.setenv(ray_auth.TOKEN_ENV, "wrong")
    text = ray_auth.explain_join_failure("127.0.0.1:6379", refused)
    assert "$RAY_AUTH_TOKEN was sent" in text and "head node's token" in text


@pytest.mark.parametrize(("message", "lost", "expected"), [
    ("The actor died because its node has died. Node Id: abc", False, "node was lost"),
    ("anything", True, "node was lost"),
    ("Task was killed due to the node running low on memory.", False, "out of memory"),
    ("Worker exits with an exit code 3. ...", False, "exit code 3"),
    ("Worker unexpectedly exits with a connection error code 2. End of file.", False,
     "killed by a signal"),
    ("The actor abc is unavailable: The actor is temporarily unavailable: RpcError", False,
     "killed by a signal"),
])
def test_ray_death_reasons(message: str, lost: bool, expected: str) -> None:
    assert expected in death_reason(RuntimeError(message), lost)


@pytest.mark.parametrize("resources", [{"CPU": 1}, {"x": 0}, {"x": "1"}, {"x": True}])
def test_custom_resources_are_checked(resources: dict) -> None:
    from nasforge.errors import ConfigError
    from nasforge.experiment import RayExecutor

    with pytest.raises(ConfigError, match="custom Ray resources"):
        RayExecutor(resources=resources)
    assert RayExecutor(resources={"big_memory": 1}).resources == {"big_memory": 1.0}


def test_restore_auth_mode_puts_back_what_was_there(clean_env: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    undo = ray_auth.restore_auth_mode()
    os.environ[ray_auth.AUTH_MODE_ENV] = "token"  # what ray.init of a local Ray does
    undo()
    assert ray_auth.AUTH_MODE_ENV not in os.environ
    monkeypatch.setenv(ray_auth.AUTH_MODE_ENV, "disabled")
    undo = ray_auth.restore_auth_mode()
    os.environ[ray_auth.AUTH_MODE_ENV] = "token"
    undo()
    assert os.environ[ray_auth.AUTH_MODE_ENV] == "disabled"
