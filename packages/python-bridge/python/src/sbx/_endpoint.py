"""Where to connect and with which token, like @sbx/client; starts a local daemon if needed."""

from __future__ import annotations

import importlib
import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlparse, urlsplit, urlunsplit

from websockets.exceptions import InvalidStatus

from ._errors import AuthenticationError, AuthError, ConnectionError, MissingApiToken, PortOwner, SandboxError
from ._generated.models import SANDBOX_ID_MAX_LENGTH, SANDBOX_ID_PATTERN

DEFAULT_URL = "ws://127.0.0.1:7070"
TOKEN_FILE = "token"

__all__ = ["Endpoint", "ResolvedToken", "resolve_endpoint", "default_state_dir", "ensure_daemon", "auth_failure", "port_owner"]


def default_state_dir() -> Path:
    """The daemon's state dir: SBX_STATE_DIR, /var/lib/sbx as root, $XDG_STATE_HOME/sbx otherwise."""
    if os.environ.get("SBX_STATE_DIR"):
        return Path(os.environ["SBX_STATE_DIR"])
    if hasattr(os, "getuid") and os.getuid() == 0:
        return Path("/var/lib/sbx")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "sbx"


@dataclass(frozen=True)
class ResolvedToken:
    """A token and where it came from, so a refusal can say which one the daemon did not take."""

    value: str
    #: "option" (``token=``), "SBX_TOKEN" or "file".
    source: str
    #: The token file read, when ``source`` is "file".
    file: Path | None = None


@dataclass(frozen=True)
class Endpoint:
    url: str
    #: True when no url was configured, so a local daemon may be started.
    embedded: bool
    explicit_token: str | None

    def resolve_token(self) -> ResolvedToken:
        if self.explicit_token:
            return ResolvedToken(self.explicit_token, "option")
        if os.environ.get("SBX_TOKEN"):
            return ResolvedToken(os.environ["SBX_TOKEN"], "SBX_TOKEN")
        path = default_state_dir() / TOKEN_FILE
        try:
            return ResolvedToken(path.read_text("utf-8").strip(), "file", path)
        except OSError as err:
            raise MissingApiToken(
                f"no token: pass token=..., set SBX_TOKEN, or make the daemon's token file {path} readable ({err})",
                token_source="file",
                token_file=str(path),
            ) from err

    def token(self) -> str:
        return self.resolve_token().value


def resolve_endpoint(url: str | None, token: str | None) -> Endpoint:
    """Options first, then SBX_URL / SBX_TOKEN, then the default URL and the daemon's token file."""
    env_url = os.environ.get("SBX_URL")
    resolved = url or env_url or DEFAULT_URL
    _check_url(resolved, "the url argument" if url else "SBX_URL" if env_url else "the default URL")
    return Endpoint(resolved, embedded=not url and not env_url, explicit_token=token)


def sandbox_bind(sandbox_id: str) -> str | None:
    """The ``bind`` for a connection about ``sandbox_id``: the id when a daemon could have made it
    (so a malformed one is still answered SandboxNotFound, not refused at the upgrade), else None."""
    return sandbox_id if len(sandbox_id) <= SANDBOX_ID_MAX_LENGTH and re.fullmatch(SANDBOX_ID_PATTERN, sandbox_id) else None


def bound_url(url: str, bind: str | None) -> str:
    """``url`` with ``bind`` in its query: the connection is about one sandbox (its id, or "new" for the one it creates).

    The daemon holds a bound connection to that sandbox, and a gateway then carries it with its native relay.
    """
    if bind is None:
        return url
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "bind"] + [("bind", bind)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _check_url(url: str, source: str) -> None:
    """websockets would fail on "127.0.0.1:7070" with a message about schemes; say what is wanted."""
    parsed = urlparse(url)
    if parsed.scheme in ("ws", "wss") and parsed.hostname:
        return
    guess = f" (did you mean ws://{url}?)" if re.fullmatch(r"[A-Za-z0-9.-]+:[0-9]+|\[[0-9A-Fa-f:.]+\]:[0-9]+", url) else ""
    raise ConnectionError(f"{source} must be a ws:// or wss:// URL, got '{url}'{guess}")


# ------------------------------------------------------------ who holds a local port


def _is_loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def port_owner(port: int) -> PortOwner | None:
    """The owner of the socket listening on local TCP ``port``: uid from /proc/net/tcp{,6}, pid
    from /proc/PID/fd where this user may read it. None when nothing is found or /proc is absent."""
    hex_port = f"{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            # sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            f = line.split()
            if len(f) < 10 or f[3] != "0A" or not f[1].endswith(f":{hex_port}"):
                continue
            uid = int(f[7])
            return PortOwner(uid, _user_name(uid), _pid_of_socket(f[9]))
    return None


def _user_name(uid: int) -> str | None:
    try:
        import pwd  # not on every platform; only Linux has /proc/net/tcp anyway

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return None


def _pid_of_socket(inode: str) -> int | None:
    target = f"socket:[{inode}]"
    try:
        pids = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return None
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue  # another user's process, or gone
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return int(pid)
            except OSError:
                pass
    return None


def port_owner_hint(url: str, owner: PortOwner) -> str:
    """Whose daemon holds the port and how to run one's own (the same sentence as @sbx/client's)."""
    u = urlparse(url)
    port = u.port or 80
    who = ", ".join(p for p in (owner.user or f"uid {owner.uid}", f"uid {owner.uid}" if owner.user else None, f"pid {owner.pid}" if owner.pid else None) if p)
    mine = port + 1
    return (
        f"{u.hostname}:{port} belongs to another user's sbx daemon ({who}), which has its own token. "
        f"Run your own on another port: `sbx daemon start --listen 127.0.0.1:{mine}`, then set SBX_URL=ws://127.0.0.1:{mine}"
    )


def auth_failure(url: str, token: ResolvedToken) -> AuthError:
    """Why the daemon at ``url`` refused ``token``, and what to do: when the token came from this
    user's token file and another user's daemon holds the loopback port, that is the likely story."""
    source = {"option": "the token passed as token=...", "SBX_TOKEN": "the token in SBX_TOKEN"}.get(token.source, f"the token from {token.file}")
    owner = None
    if token.source == "file" and _is_loopback(url):
        found = port_owner(urlparse(url).port or 80)
        owner = found if found is not None and found.uid != os.getuid() else None
    base = f"the daemon at {url} refused {source} (HTTP 401)"
    file = str(token.file) if token.file else None
    if owner is not None:
        return AuthenticationError(f"{base}: {port_owner_hint(url, owner)}", token_source=token.source, token_file=file, port_owner=owner)
    return AuthenticationError(
        f"{base}: pass token=... or set SBX_TOKEN to the token of the daemon at {url} (its state dir's token file)",
        token_source=token.source,
        token_file=file,
    )


def connect_failure(url: str, token: ResolvedToken, err: BaseException) -> SandboxError:
    """The error for a failed WebSocket handshake, from either driver: AuthError for HTTP 401,
    a ConnectionError naming the status or the cause otherwise."""
    if isinstance(err, InvalidStatus):
        status = err.response.status_code
        if status == 401:
            return auth_failure(url, token)
        return ConnectionError(f"the daemon at {url} refused the connection (HTTP {status})")
    return ConnectionError(f"cannot connect to the sbx daemon at {url}: {err}")


# ------------------------------------------------------------ starting a local daemon


def _host_port(url: str) -> tuple[str, int]:
    u = urlparse(url)
    return (u.hostname or "127.0.0.1"), (u.port or 80)


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _checkout_cli() -> Path | None:
    """The CLI of the sbx checkout this package came from: recorded when it was installed from
    one (setup.py writes sbx/_checkout.py), or found above this file (an editable install, or a
    virtualenv inside the checkout). None when there is no such checkout."""
    try:
        recorded = getattr(importlib.import_module("sbx._checkout"), "CLI", None)
    except ImportError:
        recorded = None
    candidates = [Path(recorded)] if isinstance(recorded, str) else []
    candidates += [parent / "packages" / "daemon" / "dist" / "cli.js" for parent in Path(__file__).resolve().parents]
    for cli in candidates:
        if cli.is_file():
            return cli
    return None


def _daemon_command() -> list[str] | None:
    """SBX_DAEMON_BIN (a .js file runs on node), else the checkout's CLI, else `sbx` on PATH."""
    explicit = os.environ.get("SBX_DAEMON_BIN")
    if explicit:
        return ["node", explicit] if explicit.endswith(".js") else [explicit]
    cli = _checkout_cli()
    if cli is not None:
        return ["node", str(cli)]
    found = shutil.which("sbx")
    return [found] if found else None


def _no_cli_message(url: str) -> str:
    return (
        f"no sbx daemon listens at {url}, and no sbx CLI was found to start one: start a daemon yourself "
        "(`sbx daemon start`, or `node packages/daemon/dist/cli.js daemon start` in an sbx checkout after `pnpm build`), "
        "or set SBX_DAEMON_BIN to that cli.js (or to an `sbx` executable), or put `sbx` on PATH"
    )


def ensure_daemon(endpoint: Endpoint) -> None:
    """When no url was configured and nothing listens locally, starts `sbx daemon` in the background."""
    host, port = _host_port(endpoint.url)
    if not endpoint.embedded or _listening(host, port):
        return
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ConnectionError(f"no daemon at {endpoint.url}, and only a loopback daemon can be started automatically")
    cmd = _daemon_command()
    if cmd is None:
        raise ConnectionError(_no_cli_message(endpoint.url))
    if cmd[0] == "node" and shutil.which("node") is None:
        raise ConnectionError(f"no sbx daemon listens at {endpoint.url}; the sbx CLI ({cmd[1]}) runs on Node.js 20 or newer, and `node` is not on PATH")
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
