"""sbx: run untrusted code in sandboxes on a machine you own (sync ``Sandbox``, async ``AsyncSandbox``).

Example::

    from sbx import Sandbox

    with Sandbox.create(timeout="5m") as sb:
        out = sb.spawn("python3", args=["-c", "print(1)"]).output()
        print(out.status.code, out.stdout_text)
"""

from ._async.env import AsyncSandboxEnv
from ._async.deno import AsyncDenoDeploy
from ._async.file import AsyncFsFile
from ._async.fs import AsyncSandboxFs
from ._async.process import AsyncChildProcess
from ._async.runtimes import AsyncDenoProcess, AsyncDenoRepl, AsyncPythonRepl, AsyncSandboxDeno, AsyncSandboxPython
from ._async.sandbox import AsyncSandbox
from ._async.volumes import AsyncClient, AsyncImages, AsyncPaginatedList, AsyncSnapshots, AsyncVolumes
from ._errors import (
    AuthenticationError,
    AuthError,
    ConnectionError,
    InvalidOptionError,
    MissingApiToken,
    NotSupportedError,
    NetworkPolicyError,
    PortOwner,
    ProcessAlreadyExited,
    ResourceLimitError,
    RpcError,
    SandboxCommandError,
    SandboxError,
    SandboxNotFoundError,
    UnsupportedError,
    InUseError,
    VolumeNotFoundError,
)
from ._generated.models import DirEntry, ExitStatus, FileInfo, OutputSpan, ProcessListing, SandboxInfo, SecretSpec, SnapshotInfo, Usage, VolumeInfo
from ._sync.env import SandboxEnv
from ._sync.deno import DenoDeploy
from ._sync.file import FsFile
from ._sync.fs import SandboxFs
from ._sync.process import ChildProcess
from ._sync.runtimes import DenoProcess, DenoRepl, PythonRepl, SandboxDeno, SandboxPython
from ._http import FetchResponse, HttpResponseError
from ._repl import ReplError, ReplOutput, decode_value
from ._sync.sandbox import Sandbox
from ._sync.volumes import Client, Images, PaginatedList, Snapshots, Volumes
from ._tar import TarEntryError
from ._types import CommandOutput, WalkEntry

__all__ = [
    "Sandbox",
    "AsyncSandbox",
    "ChildProcess",
    "AsyncChildProcess",
    "SandboxDeno",
    "AsyncSandboxDeno",
    "SandboxPython",
    "AsyncSandboxPython",
    "DenoRepl",
    "DenoProcess",
    "AsyncDenoProcess",
    "AsyncDenoRepl",
    "PythonRepl",
    "AsyncPythonRepl",
    "FetchResponse",
    "HttpResponseError",
    "ReplError",
    "ReplOutput",
    "decode_value",
    "SandboxFs",
    "AsyncSandboxFs",
    "FsFile",
    "AsyncFsFile",
    "DenoDeploy",
    "AsyncDenoDeploy",
    "NotSupportedError",
    "SandboxEnv",
    "AsyncSandboxEnv",
    "CommandOutput",
    "WalkEntry",
    "ExitStatus",
    "ProcessListing",
    "OutputSpan",
    "FileInfo",
    "DirEntry",
    "SandboxInfo",
    "SecretSpec",
    "Usage",
    "Client",
    "AsyncClient",
    "Volumes",
    "AsyncVolumes",
    "Snapshots",
    "AsyncSnapshots",
    "Images",
    "AsyncImages",
    "PaginatedList",
    "AsyncPaginatedList",
    "VolumeInfo",
    "SnapshotInfo",
    "VolumeNotFoundError",
    "InUseError",
    "UnsupportedError",
    "SandboxError",
    "ConnectionError",
    "AuthError",
    "AuthenticationError",
    "MissingApiToken",
    "ProcessAlreadyExited",
    "PortOwner",
    "RpcError",
    "SandboxCommandError",
    "SandboxNotFoundError",
    "InvalidOptionError",
    "NetworkPolicyError",
    "ResourceLimitError",
    "TarEntryError",
]
