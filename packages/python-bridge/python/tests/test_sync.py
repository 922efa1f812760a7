"""The sync client against a real daemon."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from collections.abc import Iterator
from typing import Any

import pytest

from sbx import (
    AuthenticationError,
    AuthError,
    FsFile,
    InvalidOptionError,
    MissingApiToken,
    ProcessAlreadyExited,
    RpcError,
    Sandbox,
    SandboxCommandError,
    SandboxNotFoundError,
)

from .conftest import Daemon


def test_spawn_output_status(daemon: Daemon) -> None:
    with Sandbox.create() as sb:
        assert sb.id.startswith("sbx_")
        out = sb.spawn("python3", args=["-c", "import sys; print(1); print('e', file=sys.stderr); sys.exit(3)"]).output()
        assert out.status.code == 3
        assert out.status.success is False
        assert out.status.signal is None
        assert out.stdout == b"1\n"
        assert out.stdout_text == "1\n"
        assert out.stderr_text == "e\n"


def test_streaming_stdout(daemon: Daemon) -> None:
    with Sandbox.create() as sb:
        p = sb.spawn("bash", args=["-c", "for i in 1 2 3; do echo $i; sleep 0.05; done"])
        assert p.stdout is not None
        chunks = [c for c in p.stdout]
        assert b"".join(chunks) == b"1\n2\n3\n"
        assert p.wait().code == 0


def test_stdin_round_trip(daemon: Daemon) -> None:
    with Sandbox.create() as sb:
        p = sb.spawn("cat", stdin="piped")
        p.write_stdin("hello ")
        p.write_stdin(b"world")
        p.close_stdin()
        out = p.output()
        assert out.stdout == b"hello world"
        assert out.status.success


def test_large_stdin_through_flow_control(daemon: Daemon) -> None:
    with Sandbox.create() as sb:
        p = sb.spawn("wc", args=["-c"], stdin="piped")
        block = b"x" * (1 << 20)
        for _ in range(8):
            p.write_stdin(block)
        p.close_stdin()
        assert p.output().stdout_text == f"{8 << 20}\n"


def test_kill_reports_signal(daemon: Daemon) -> None:
    with Sandbox.create() as sb:
        p = sb.spawn("sleep", args=["30"])
        p.kill("SIGKILL")
        status = p.wait()
        assert status.signal == "SIGKILL"
        assert status.code == 137
        assert status.success is False
        assert status.oom is False
        # Killing it again: Deno's Python SDK's error for a process that already exited.
        with pytest.raises(ProcessAlreadyExited):
            p.kill()


def test_auth_errors_have_denos_names(daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AuthenticationError) as refused:
        Sandbox.create(token="not-the-token")
    assert isinstance(refused.value, AuthError)
    assert "refused the token passed as token=..." in str(refused.value)
    monkeypatch.delenv("SBX_TOKEN", raising=False)
    monkeypatch.setenv("SBX_STATE_DIR", "/nonexistent-sbx-state")
    with pytest.raises(MissingApiToken) as missing:
        Sandbox.create()
    assert isinstance(missing.value, AuthError)
    assert str(missing.value).startswith("no token:")


def test_env_is_passed_untouched(daemon: Daemon) -> None:
    with Sandbox.create(env={"MY_VAR": "a", "camelCase": "b"}) as sb:
        assert sb.env.get("MY_VAR") == "a"
        assert sb.env.get("camelCase") == "b"
        sb.env.set("OtherVar", "c")
        assert sb.env.to_object()["OtherVar"] == "c"
        assert sb.sh("echo $MY_VAR$camelCase$OtherVar").text() == "abc"
        sb.env.delete("OtherVar")
        assert sb.env.get("OtherVar") is None
        out = sb.spawn("printenv", args=["ONLY"], env={"ONLY": "x"}, clear_env=True).output()
        assert out.stdout_text == "x\n"


def test_sh_quotes_and_raises(daemon: Daemon) -> None:
    with Sandbox.create() as sb:
        assert sb.sh("echo", "a b", "$HOME", "it's").text() == "a b $HOME it's"
        with pytest.raises(SandboxCommandError) as info:
            sb.sh("ls", "/nonexistent dir")
        assert info.value.status.code == 2
        assert "No such file" in info.value.stderr
        assert info.value.code == "COMMAND_FAILED"
        assert sb.sh("exit 4", check=False).status.code == 4


def test_fs_text_and_bytes(daemon: Daemon) -> None:
    with Sandbox.create() as sb:
        sb.fs.write_text_file("/home/user/a.txt", "héllo\n")
        assert sb.fs.read_text_file("/home/user/a.txt") == "héllo\n"
        data = bytes(range(256)) * 4099
        assert sb.fs.write_file("b.bin", data) == len(data)
        assert sb.fs.read_file("/home/user/b.bin") == data
        info = sb.fs.stat("b.bin")
        assert info.is_file and info.size == len(data) and not info.is_directory
        sb.fs.mkdir("d/e", recursive=True)
        sb.fs.rename("b.bin", "d/e/c.bin")
        sb.fs.copy_file("d/e/c.bin", "d/copy.bin")
        sb.fs.symlink("e/c.bin", "d/link")
        assert sb.fs.read_link("d/link") == "e/c.bin"
        assert sb.fs.real_path("d/link") == "/home/sandbox/d/e/c.bin"
        assert sb.fs.lstat("d/link").is_symlink
        sb.fs.chmod("d/copy.bin", 0o600)
        assert sb.fs.stat("d/copy.bin").mode & 0o7777 == 0o600
        assert sorted(e.name for e in sb.fs.read_dir("d")) == ["copy.bin", "e", "link"]
        tmp = sb.fs.make_temp_dir(prefix="x-")
        assert tmp.startswith("/tmp/x-")
        sb.fs.remove("d", recursive=True)
        assert not sb.fs.exists("d")
        with pytest.raises(RpcError) as info2:
            sb.fs.read_file("/nope")
        assert info2.value.errno == "ENOENT"
        assert info2.value.code == "ENOENT"  # as @sbx/client's RpcError.code


def test_write_file_errors_say_what_failed(daemon: Daemon) -> None:
    with Sandbox.create() as sb:
        with pytest.raises(TypeError, match=r"^data: expected bytes, str or an iterable of bytes, not int$"):
            sb.fs.write_file("n.bin", 42)  # type: ignore[arg-type]
        assert not sb.fs.exists("n.bin")

        def broken() -> Iterator[bytes]:
            yield b"x" * 300_000
            raise RuntimeError("the source broke")

        # The caller's own error, not the aborted upload's; the partial write is discarded.
        with pytest.raises(RuntimeError, match="the source broke"):
            sb.fs.write_file("g.bin", broken())
        with pytest.raises(TypeError):
            sb.fs.write_file("c.bin", iter([b"ok", 7]))  # type: ignore[arg-type]
        assert not sb.fs.exists("g.bin") and not sb.fs.exists("c.bin")
        # A refusal by the daemon is still its answer.
        with pytest.raises(RpcError) as refused:
            sb.fs.write_file("/no/such/dir/f", b"data")
        assert refused.value.errno == "ENOENT"


def test_list_by_label(daemon: Daemon) -> None:
    tag = uuid.uuid4().hex
    with Sandbox.create(labels={"suite": tag, "Mixed_Case": "v"}) as sb:
        found = Sandbox.list(labels={"suite": tag})
        assert [s.id for s in found] == [sb.id]
        assert found[0].labels == {"suite": tag, "Mixed_Case": "v"}
        assert found[0].status == "running"
        assert Sandbox.list(labels={"suite": "other-" + tag}) == []


def test_bad_params_name_the_field(daemon: Daemon) -> None:
    with pytest.raises(InvalidOptionError) as info:
        Sandbox.create(memory="lots")
    assert "memory" in str(info.value)
    # As the caller spelled it (allow_net), not as the wire does (allowNet); keys below it stay as given.
    with pytest.raises(InvalidOptionError, match=r"^params\.allow_net"):
        Sandbox.create(allow_net="example.com")  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionError, match=r"^params\.labels\.myLabel: expected string"):
        Sandbox.create(labels={"myLabel": 5})  # type: ignore[dict-item]
    assert info.value.code == "INVALID_OPTION"
    with pytest.raises(InvalidOptionError) as info2:
        Sandbox.create(timeout="forever")
    assert "timeout" in str(info2.value)


def test_common_size_and_duration_spellings(daemon: Daemon) -> None:
    # Sizes are case-insensitive with an optional B (GB decimal, G/GiB binary); durations compound.
    with Sandbox.create(memory="1gb", disk="1.5GiB", timeout="1h30m") as sb:
        assert sb.expires_at is not None
        assert abs((sb.expires_at - sb.created_at).total_seconds() - 5400) < 60
        # As Deno's: the new expiry is now + the duration.
        assert (sb.extend_timeout("2m30s") - datetime.now(timezone.utc)).total_seconds() == pytest.approx(150, abs=2)
    with pytest.raises(InvalidOptionError) as info:
        Sandbox.create(memory="1 gigabyte")
    assert str(info.value) == 'params.memory: must be a non-negative number of bytes or a size such as "512MiB", "1.5GiB" or "10GB"'


def test_unknown_sandbox(daemon: Daemon) -> None:
    with pytest.raises(SandboxNotFoundError) as info:
        Sandbox.connect("sbx_doesnotexist000000000000")
    assert info.value.code == "SANDBOX_NOT_FOUND"


def test_allow_net_and_secrets_pass_through(daemon: Daemon) -> None:
    # allow_net reaches the daemon as allowNet: a disallowed host is refused by its proxy with 403.
    with Sandbox.create(allow_net=["api.openai.com"]) as sb:
        out = sb.sh("curl -s -o /dev/null -w '%{http_code}' http://example.com/", check=False)
        assert out.stdout_text == "403"
        log = sb.egress_log()
        assert [(e.host, e.allowed) for e in log] == [("example.com", False)]
    # The secret's name reaches the daemon intact, and so does the refusal of its placeholder over plain HTTP.
    with Sandbox.create(secrets={"OPENAI_API_KEY": {"hosts": ["api.openai.com"], "value": "sk-0123456789"}}) as sb:
        out = sb.sh('curl -s -o /dev/null -w "%{http_code}" -H "X: $OPENAI_API_KEY" http://example.com/', check=False)
        assert out.stdout_text == "403"
        assert [(e.host, e.secret) for e in sb.egress_log()] == [("example.com", "OPENAI_API_KEY")]


def test_bad_stdio_modes_name_the_option(daemon: Daemon) -> None:
    with Sandbox.create() as sb:
        bad: list[tuple[str, Any]] = [("stdout", "inheirt"), ("stderr", "bogus"), ("stdin", "inherit"), ("stdout", 1)]
        for option, mode in bad:
            with pytest.raises(InvalidOptionError) as info:
                sb.spawn("true", **{option: mode})
            assert str(info.value).startswith(f"{option}: must be ")
        # Before, an unknown stdout mode opened a stream nobody read: this output stalled the process.
        assert sb.sh("head -c 2000000 /dev/zero | wc -c").stdout_text == "2000000\n"


def test_usage_after_kill_with_a_token_given_as_an_argument(daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SBX_TOKEN", raising=False)
    sb = Sandbox.create(url=daemon.url, token=daemon.token)
    sb.spawn("true").wait()
    sb.kill()
    sb.kill()  # killed already: nothing to do (as in TypeScript)
    # A new connection, made with the token the sandbox was created with (not one from the environment).
    assert sb.usage().wall_seconds >= 0


def test_connect_extend_usage_kill(daemon: Daemon) -> None:
    sb = Sandbox.create(timeout="5m")
    try:
        other = Sandbox.connect(sb.id)
        with other:
            assert other.sh("echo hi").text() == "hi"
        before = sb.expires_at
        assert before is not None
        assert sb.extend_timeout("10m") > before
        usage = sb.usage()
        assert usage.wall_seconds >= 0 and usage.egress.requests == 0
        sb.kill()
        with pytest.raises(SandboxNotFoundError):
            Sandbox.connect(sb.id)
    finally:
        sb.close()


def test_fs_calls_as_denos(daemon: Daemon) -> None:
    # link, truncate, make_temp_file, utime, chown and umask, named as Deno's Python SDK names them.
    with Sandbox.create() as sb:
        sb.fs.write_text_file("a.txt", "0123456789")
        sb.fs.link("a.txt", "hard.txt")
        assert sb.fs.stat("a.txt").nlink == 2
        assert sb.fs.stat("a.txt").ino == sb.fs.stat("hard.txt").ino
        sb.fs.truncate("a.txt", 4)
        assert sb.fs.read_text_file("hard.txt") == "0123"
        sb.fs.truncate("a.txt")
        assert sb.fs.stat("a.txt").size == 0
        tmp = sb.fs.make_temp_file(prefix="p-", suffix=".txt")
        assert tmp.startswith("/tmp/p-") and tmp.endswith(".txt")
        assert sb.fs.stat(tmp).is_file
        sb.fs.utime("a.txt", 1_000_000, datetime(2030, 1, 1, tzinfo=timezone.utc))
        st = sb.fs.stat("a.txt")
        assert st.atime == 1_000_000_000
        assert st.mtime == datetime(2030, 1, 1, tzinfo=timezone.utc).timestamp() * 1000
        sb.fs.chown("a.txt", 1000, None)
        with pytest.raises(RpcError) as err:
            sb.fs.chown("a.txt", 0, 0)
        assert err.value.errno in ("EINVAL", "EPERM")
        assert sb.fs.umask(0o077) == 0o022
        assert sb.fs.umask() == 0o077
        assert sb.sh("umask").stdout_text == "0077\n"


def test_fs_file(daemon: Daemon) -> None:
    # open/create give an FsFile: write, seek, read(size), stat, truncate, lock, close; a context manager.
    with Sandbox.create() as sb:
        with sb.fs.create("data.bin") as f:
            assert isinstance(f, FsFile)
            assert f.write(b"hello world") == 11
            assert f.seek(6) == 6
            assert f.read(16) == b"world"
            assert f.read(16) == b""
            assert f.seek(-5, 2) == 6
            assert f.stat().size == 11
            f.truncate(5)
            f.sync()
            f.sync_data()
            f.utime(1_000_000, 2_000_000)
            assert f.stat().mtime == 2_000_000_000
            f.lock(True)
            f.unlock()
        assert sb.fs.read_text_file("data.bin") == "hello"
        f.close()  # closing again does nothing
        with pytest.raises(RpcError) as err:
            f.read(4)
        assert err.value.errno == "EBADF"
        ro = sb.fs.open("data.bin")
        with pytest.raises(RpcError) as err:
            ro.write(b"x")
        assert err.value.errno == "EBADF"
        ro.close()
        with pytest.raises(RpcError) as err:
            sb.fs.open("data.bin", write=True, create_new=True)
        assert err.value.errno == "EEXIST"
        big = bytes(range(256)) * 8192  # 2 MiB: more than one read
        with sb.fs.open("big.bin", write=True, create=True) as w:
            assert w.write(big) == len(big)
        with sb.fs.open("big.bin") as r:
            got = b""
            while chunk := r.read(1 << 20):
                got += chunk
        assert got == big
