"""Ray token authentication for the processes the security tests start: a token file anywhere (a
temporary directory), never the user's real ~/.ray (Ray 2.60 reads RAY_AUTH_MODE=token and the token
from RAY_AUTH_TOKEN, else the file named by RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token)."""

import os
import secrets
import socket
from pathlib import Path

AUTH_MODE_VAR = "RAY_AUTH_MODE"
TOKEN_VAR = "RAY_AUTH_TOKEN"
TOKEN_PATH_VAR = "RAY_AUTH_TOKEN_PATH"


def write_token_file(path: str | Path, token: str | None = None) -> Path:
    """Write a token (a new random 256-bit one by default) readable by its owner only."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(token or secrets.token_hex(32))
    path.chmod(0o600)
    return path


def read_token(path: str | Path) -> str:
    """The token in a token file, without surrounding whitespace."""
    path = Path(path).expanduser()
    token = path.read_text().strip()
    if not token:
        raise ValueError(f"Ray auth token file {path} is empty")
    return token


def token_auth_env(
    token_path: str | Path, base: dict[str, str] | None = None
) -> dict[str, str]:
    """Environment for a Ray child process with token auth on, reading the token from `token_path`.

    Other auth variables in `base` are dropped so that a stray RAY_AUTH_TOKEN cannot win over the file.
    """
    env = {k: v for k, v in (os.environ if base is None else base).items() if k != TOKEN_VAR}
    env[AUTH_MODE_VAR] = "token"
    env[TOKEN_PATH_VAR] = str(Path(token_path).expanduser())
    return env


def without_auth_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment with every Ray auth variable removed (a client that holds no token)."""
    source = os.environ if base is None else base
    return {k: v for k, v in source.items() if k not in (AUTH_MODE_VAR, TOKEN_VAR, TOKEN_PATH_VAR)}


def auth_headers(token: str) -> dict[str, str]:
    """HTTP headers the Ray dashboard and job API accept (`JobSubmissionClient(headers=...)`)."""
    return {"Authorization": f"Bearer {token}"}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (for Ray processes started next to others)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
