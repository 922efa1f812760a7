"""Error classes, mirroring @sbx/client: each has a stable ``code`` string to switch on."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._generated.models import ERROR_CODES

if TYPE_CHECKING:
    from ._generated.models import ExitStatus

__all__ = [
    "SandboxError",
    "ConnectionError",
    "AuthError",
    "PortOwner",
    "RpcError",
    "SandboxCommandError",
    "SandboxNotFoundError",
    "VolumeNotFoundError",
    "InUseError",
    "UnsupportedError",
    "InvalidOptionError",
    "NetworkPolicyError",
    "ResourceLimitError",
    "from_rpc_error",
]


class SandboxError(Exception):
    """Base class of every error sbx raises; ``code`` is stable and safe to switch on."""

    code: str = "SANDBOX_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConnectionError(SandboxError):  # noqa: A001 - the SDK's own, like the TS client
    """The connection to the daemon failed or closed; pending calls raise this."""

    code = "CONNECTION_ERROR"


@dataclass(frozen=True)
class PortOwner:
    """Who listens on a local TCP port, as far as /proc tells this user."""

    uid: int
    #: The uid's name, if it has one.
    user: str | None
    #: Only found when this user may read the owner's /proc/PID/fd (its own processes, or root).
    pid: int | None


class AuthError(SandboxError):
    """The daemon refused the token (HTTP 401), or no token was found. The message says which
    token was tried and what to do; when another local user's daemon holds the port,
    ``port_owner`` says whose."""

    code = "AUTH_ERROR"

    def __init__(self, message: str, *, token_source: str | None = None, token_file: str | None = None, port_owner: PortOwner | None = None) -> None:
        super().__init__(message)
        #: Where the refused token came from: "option" (``token=``), "SBX_TOKEN" or "file".
        self.token_source = token_source
        #: The token file read, when ``token_source`` is "file".
        self.token_file = token_file
        self.port_owner = port_owner


class AuthenticationError(AuthError):
    """The daemon refused the token given (HTTP 401); Deno's Python SDK's name for it."""


class MissingApiToken(AuthError):  # noqa: N818 - Deno's Python SDK's name
    """No token was given and none could be found; Deno's Python SDK's name for it."""


class RpcError(SandboxError):
    """
    The daemon answered a call with a JSON-RPC error. ``code`` is the errno name (``ENOENT``,
    ``EACCES``, ...) of a failed file or spawn operation, else ``RPC_ERROR``, as in @sbx/client;
    the subclasses keep their own.
    """

    code = "RPC_ERROR"

    def __init__(self, message: str, rpc_code: int, data: Any = None) -> None:
        super().__init__(message)
        self.rpc_code = rpc_code
        self.data = data
        if type(self).code == RpcError.code and self.errno is not None:
            self.code = self.errno

    @property
    def errno(self) -> str | None:
        """The errno name (``ENOENT``, ``EACCES``, ...) of a failed file or spawn operation."""
        if isinstance(self.data, dict):
            e = self.data.get("errno")
            return e if isinstance(e, str) else None
        return None


class SandboxNotFoundError(RpcError):
    """No running sandbox with that id belongs to this token."""

    code = "SANDBOX_NOT_FOUND"


class ProcessAlreadyExited(RpcError):  # noqa: N818 - Deno's Python SDK's name
    """The process is not running (it exited, or the pid was never this sandbox's), as Deno's Python SDK says when killing one."""

    code = "PROCESS_NOT_FOUND"


class NotSupportedError(SandboxError):
    """Something Deno's SDK offers that sbx does not (yet); the message says what."""

    code = "NOT_SUPPORTED"


class InvalidOptionError(RpcError):
    """An option or parameter was rejected; the message names it."""

    code = "INVALID_OPTION"


class NetworkPolicyError(RpcError):
    """The network policy refused something."""

    code = "NETWORK_POLICY"


class ResourceLimitError(RpcError):
    """A limit was reached."""

    code = "RESOURCE_LIMIT"


class VolumeNotFoundError(RpcError):
    """No volume or snapshot with that id or slug belongs to this token."""

    code = "VOLUME_NOT_FOUND"


class InUseError(RpcError):
    """The volume or snapshot is in use (mounted by a sandbox, or busy with another call); the message says by what."""

    code = "IN_USE"


class UnsupportedError(RpcError):
    """The daemon cannot do this in the mode it runs in (volumes need root mode)."""

    code = "UNSUPPORTED"


class SandboxCommandError(SandboxError):
    """A command run with ``sh`` exited unsuccessfully; ``status`` and the output say how."""

    code = "COMMAND_FAILED"

    def __init__(self, message: str, status: ExitStatus, stdout: str, stderr: str) -> None:
        super().__init__(message)
        self.status = status
        self.stdout = stdout
        self.stderr = stderr


_BY_CODE: dict[int, type[RpcError]] = {
    ERROR_CODES["SandboxNotFound"]: SandboxNotFoundError,
    ERROR_CODES["ProcessNotFound"]: ProcessAlreadyExited,
    ERROR_CODES["InvalidParams"]: InvalidOptionError,
    ERROR_CODES["NetworkPolicy"]: NetworkPolicyError,
    ERROR_CODES["ResourceLimit"]: ResourceLimitError,
    ERROR_CODES["TooManyRequests"]: ResourceLimitError,
    ERROR_CODES["VolumeNotFound"]: VolumeNotFoundError,
    ERROR_CODES["InUse"]: InUseError,
    ERROR_CODES["Unsupported"]: UnsupportedError,
}


def _python_names(message: str) -> str:
    """The daemon names a parameter as the wire spells it (``params.allowNet``); a Python caller typed
    ``allow_net``. Only the parameter's own name changes: what follows it (an env var, a label) is the
    caller's key, as given."""
    return re.sub(r"\bparams\.([a-z][A-Za-z0-9]*)", lambda m: "params." + re.sub(r"(?<=[a-z0-9])([A-Z])", lambda c: "_" + c.group(1).lower(), m.group(1)), message)


def from_rpc_error(err: Any) -> RpcError:
    """Maps a JSON-RPC error object from the daemon onto the error class for its code."""
    code = err.get("code") if isinstance(err, dict) else None
    message = err.get("message") if isinstance(err, dict) else None
    if not isinstance(code, int):
        code = ERROR_CODES["InternalError"]
    cls = _BY_CODE.get(code, RpcError)
    text = str(message or "unknown error")
    if code == ERROR_CODES["InvalidParams"]:
        text = _python_names(text)
    return cls(text, code, err.get("data") if isinstance(err, dict) else None)
