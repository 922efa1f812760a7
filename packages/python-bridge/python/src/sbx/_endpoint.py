"""Where to connect and with which token, like @sbx/client; starts a local daemon if needed."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from ._errors import AuthError, ConnectionError

DEFAULT_URL = "ws://127.0.0.1:7070"
TOKEN_FILE = "token"

__all__ = ["Endpoint", "resolve_endpoint", "default_state_dir", "ensure_daemon"]


def default_state_dir() -> Path:
    """The daemon's state dir: SBX_STATE_DIR, /var/lib/sbx as root, $XDG_STATE_HOME/sbx otherwise."""
    if os.environ.get("SBX_STATE_DIR"):
        return Path(os.environ["SBX_STATE_DIR"])
    if hasattr(os, "getuid") and os.getuid() == 0:
        return Path("/var/lib/sbx")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "sbx"


@dataclass(frozen=True)
class Endpoint:
    url: str
    #: True when no url was configured, so a local daemon may be started.
    embedded: bool
    explicit_token: str | None

    def token(self) -> str:
        if self.explicit_token:
            return self.explicit_token
        if os.environ.get("SBX_TOKEN"):
            return os.environ["SBX_TOKEN"]
        path = default_state_dir() / TOKEN_FILE
        try:
            return path.read_text("utf-8").strip()
        except OSError as err:
            raise AuthError(f"no token: pass token=..., set SBX_TOKEN, or make the daemon's token file {path} readable ({err})") from err


def resolve_endpoint(url: str | None, token: str | None) -> Endpoint:
    """Options first, then SBX_URL / SBX_TOKEN, then the default URL and the daemon's token file."""
    resolved = url or os.environ.get("SBX_URL") or DEFAULT_URL
    return Endpoint(resolved, embedded=not url and not os.environ.get("SBX_URL"), explicit_token=token)


def _host_port(url: str) -> tuple[str, int]:
    u = urlparse(url)
    return (u.hostname or "127.0.0.1"), (u.port or 80)


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _daemon_command() -> list[str] | None:
    """SBX_DAEMON_BIN (a .js file runs on node), else `sbx` on PATH."""
    explicit = os.environ.get("SBX_DAEMON_BIN")
    if explicit:
        return ["node", explicit] if explicit.endswith(".js") else [explicit]
    found = shutil.which("sbx")
    return [found] if found else None


def ensure_daemon(endpoint: Endpoint) -> None:
    """When no url was configured and nothing listens locally, starts `sbx daemon` in the background."""
    host, port = _host_port(endpoint.url)
    if not endpoint.embedded or _listening(host, port):
        return
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ConnectionError(f"no daemon at {endpoint.url}, and only a loopback daemon can be started automatically")
    cmd = _daemon_command()
    if cmd is None:
        raise ConnectionError(f"no sbx daemon listens at {endpoint.url} and the sbx CLI was not found to start one: install it or run `sbx daemon`")
    state = default_state_dir()
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    with open(state / "daemon.log", "ab") as log:
        child = subprocess.Popen([*cmd, "daemon", "--listen", listen], stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if _listening(host, port):
            return
        if child.poll() is not None and not _listening(host, port):
            raise ConnectionError(f"the local sbx daemon exited with code {child.returncode}; see {state / 'daemon.log'}")
        time.sleep(0.05)
    raise ConnectionError(f"the local sbx daemon did not start listening on {endpoint.url} within 15s; see {state / 'daemon.log'}")
