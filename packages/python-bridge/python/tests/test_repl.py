"""sb.deno and sb.python: stateful REPLs, sync and async, against a real daemon."""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone

import pytest

from sbx import AsyncSandbox, DenoRepl, PythonRepl, ReplError, RpcError, Sandbox, decode_value

from .conftest import Daemon


def test_deno_eval_and_repl_state(daemon: Daemon) -> None:
    with Sandbox.create() as sb:
        assert sb.deno.eval("const a = 1; const b = 2; a + b;") == 3
        with sb.deno.repl() as repl:
            assert isinstance(repl, DenoRepl)
            assert repl.eval("const x: number = 42;") is None
            assert repl.eval("x + 8") == 50
            assert repl.eval("await Promise.resolve(x * 2)") == 84
            assert repl.call("(a, b) => a + b", 1, 2) == 3
            v = repl.eval("({ big: 2n ** 70n, d: new Date(0), m: new Map([[[1, 2], 'pair']]), s: new Set([1]), b: new Uint8Array([0, 255]), n: NaN, u: undefined })")
            assert v["big"] == 2**70
            assert v["d"] == datetime(1970, 1, 1, tzinfo=timezone.utc)
            assert v["m"] == {(1, 2): "pair"}
            assert v["s"] == {1}
            assert v["b"] == b"\x00\xff"
            assert math.isnan(v["n"])
            assert v["u"] is None
            with pytest.raises(ReplError) as caught:
                repl.eval("null.x")
            assert caught.value.type == "TypeError"
            assert "null" in str(caught.value)
            assert repl.eval("'still here'") == "still here"


def test_python_repl_state_output_errors(daemon: Daemon) -> None:
    with Sandbox.create() as sb:
        assert sb.python.eval("x = 6\nx * 7") == 42
        with sb.python.repl() as py:
            assert isinstance(py, PythonRepl)
            assert py.eval("import math\nr = 2") is None
            assert py.eval("round(math.pi * r ** 2, 3)") == 12.566
            py.eval("def add(a, b):\n    return a + b")
            assert py.call("add", 2, 3) == 5
            out = py.exec("import os, sys\nprint('out')\nprint('err', file=sys.stderr)\nos.system('echo child')\n7")
            assert (out.value, out.repr, out.stdout, out.stderr, out.error) == (7, "7", "out\nchild\n", "err\n", None)
            failed = py.exec("print('before')\ndef f():\n    return 1 / 0\nf()")
            assert failed.stdout == "before\n"
            assert failed.error is not None
            assert failed.error.type == "ZeroDivisionError"
            assert 'File "<cell-' in failed.error.traceback and "python-repl" not in failed.error.traceback
            with pytest.raises(ReplError, match="NameError"):
                py.eval("nope")


def test_python_timeout_keeps_session(daemon: Daemon) -> None:
    with Sandbox.create() as sb:
        with sb.python.repl() as py:
            py.eval("kept = 'yes'")
            started = time.monotonic()
            out = py.exec("while True:\n    pass", timeout=300)
            assert time.monotonic() - started < 3
            assert out.error is not None and out.error.type == "TimeoutError"
            assert py.eval("kept") == "yes"


def test_closed_repl_is_gone(daemon: Daemon) -> None:
    with Sandbox.create() as sb:
        py = sb.python.repl()
        py.close()
        with pytest.raises(RpcError, match="no running REPL"):
            py.eval("1")
        py.close()  # again: nothing to do


async def test_async_repls(daemon: Daemon) -> None:
    async with await AsyncSandbox.create() as sb:
        assert await sb.deno.eval("Deno.version.deno.split('.')[0]") == "2"
        async with await sb.python.repl() as py:
            await py.eval("n = 1")
            await py.eval("n += 1")
            assert await py.eval("n") == 2
            out = await py.exec("print('a')")
            assert out.stdout == "a\n"


def test_decode_value_refs_and_tags() -> None:
    shared = decode_value([{"a": 1}, {"$": "ref", "v": 1}])
    assert shared[0] is shared[1]
    assert decode_value({"$": "obj", "v": [["$", 1]]}) == {"$": 1}
    with pytest.raises(ValueError, match="unknown tag"):
        decode_value({"$": "nope"})
    with pytest.raises(ValueError, match="never sent"):
        decode_value({"$": "ref", "v": 5})
