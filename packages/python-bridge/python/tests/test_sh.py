"""``sb.sh``: what TypeScript's ``sh`...` `` chain offers, as keywords and result helpers."""

from __future__ import annotations

import json
from pathlib import PurePosixPath

import pytest

from sbx import AsyncSandbox, CommandOutput, Sandbox, SandboxCommandError

from .conftest import Daemon

WEIRD = "a dir/with 'quotes' $HOME `x` ;&|*"


def test_sh_sync(daemon: Daemon) -> None:
    with Sandbox.create() as sb:
        # The API.md form: every argument after the script is one shell word, whatever it holds.
        sb.fs.mkdir(f"/tmp/{WEIRD}", recursive=True)
        sb.fs.write_text_file(f"/tmp/{WEIRD}/f.txt", "x")
        listing = sb.sh("ls", "-la", f"/tmp/{WEIRD}")
        assert isinstance(listing, CommandOutput) and "f.txt" in listing.text()
        assert sb.sh("printf '%s|'", WEIRD, "", 7, PurePosixPath("/p q")).text() == f"{WEIRD}||7|/p q|"

        # .cwd(p) / .env(k, v)
        assert sb.sh("pwd", cwd=f"/tmp/{WEIRD}").text() == f"/tmp/{WEIRD}"
        assert sb.sh("pwd").text() == "/home/sandbox"
        sb.env.set("KEPT", "k")
        assert sb.sh('echo "$GREETING $lower_Case $KEPT"', env={"GREETING": "hi", "lower_Case": "x"}).text() == "hi x k"

        # .text() / .json()
        assert sb.sh("printf 'two\\nlines\\r\\n'").text() == "two\nlines"
        assert sb.sh("printf 'keep\\n\\n'").text() == "keep\n"
        assert sb.sh("echo", json.dumps({"a": [1, "b"], "camelCase": None})).json() == {"a": [1, "b"], "camelCase": None}
        with pytest.raises(ValueError):
            sb.sh("echo not json").json()

        # .noThrow(): exit codes and signals come back instead of raising.
        failed = sb.sh("echo partial; echo oops >&2; exit 3", check=False)
        assert (failed.status.code, failed.success, failed.text(), failed.stderr_text) == (3, False, "partial", "oops\n")
        killed = sb.sh("kill -KILL $$", check=False)
        assert (killed.status.signal, killed.status.code) == ("SIGKILL", 137)

        with pytest.raises(SandboxCommandError) as info:
            sb.sh("echo out; echo err1 >&2; echo err2 >&2; exit 5")
        err = info.value
        assert (err.status.code, err.stdout, err.stderr, err.code) == (5, "out\n", "err1\nerr2\n", "COMMAND_FAILED")
        assert str(err) == "command exited with code 5\nerr1\nerr2"
        # The command line stays out of the message (its arguments may be secrets; messages end up in logs).
        with pytest.raises(SandboxCommandError) as leaked:
            sb.sh("exit 1; echo", "SECRETVALUE-1234")
        assert "SECRETVALUE" not in str(leaked.value) and str(leaked.value) == "command exited with code 1"
        with pytest.raises(SandboxCommandError, match="was killed by SIGKILL"):
            sb.sh("kill -KILL $$")


async def test_sh_async(daemon: Daemon) -> None:
    async with await AsyncSandbox.create() as sb:
        await sb.fs.mkdir("/tmp/d e")
        assert (await sb.sh("pwd", cwd="/tmp/d e")).text() == "/tmp/d e"
        assert (await sb.sh("echo $X", env={"X": "y"})).text() == "y"
        assert (await sb.sh("echo", '{"n": 1}')).json() == {"n": 1}
        assert (await sb.sh("exit 9", check=False)).status.code == 9
        with pytest.raises(SandboxCommandError) as info:
            await sb.sh("ls", "/tmp/no such")
        assert info.value.status.code == 2 and "no such" in info.value.stderr
