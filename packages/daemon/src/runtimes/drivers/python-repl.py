# sbx's Python REPL driver, bound read-only into every sandbox at /.sbx/repl/python.py and started
# by the daemon (repl.start). Requests arrive as JSON lines on fd 3 and replies leave on fd 4, so
# nothing the user's code prints can pass for a reply. Each call's stdout and stderr (fds 1 and 2,
# child processes included) are captured in memory files; a timeout raises an interrupt in the
# code and the session, with all its state, goes on.
import ast
import asyncio
import base64
import datetime
import json
import linecache
import math
import os
import signal
import sys
import traceback

MAX_CAPTURE = 1 << 20
MAX_VALUE = 16 << 20


class Timeout(KeyboardInterrupt):
    """A call ran past its timeout. A KeyboardInterrupt, so `except Exception` in user code does not swallow it."""


def encode(root):
    """The wire form of a value: JSON, with {"$": tag} objects for what JSON cannot say (decode_value in the SDKs)."""
    seen = {}
    count = [0]

    def enc(v, depth):
        count[0] += 1
        if count[0] > 1_000_000 or depth > 500:
            raise ValueError("the value is too large or too deep to return")
        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, int):
            return v if abs(v) <= 2**53 else {"$": "bigint", "v": str(v)}
        if isinstance(v, float):
            if math.isnan(v) or math.isinf(v):
                return {"$": "num", "v": "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")}
            return {"$": "num", "v": "-0"} if v == 0 and math.copysign(1, v) < 0 else v
        if isinstance(v, (bytes, bytearray, memoryview)):
            return {"$": "bytes", "v": base64.b64encode(bytes(v)).decode()}
        if isinstance(v, datetime.datetime):
            return {"$": "date", "v": v.timestamp() * 1000}
        if id(v) in seen:
            return {"$": "ref", "v": seen[id(v)]}
        if isinstance(v, (list, tuple)):
            seen[id(v)] = len(seen)
            return [enc(x, depth + 1) for x in v]
        if isinstance(v, (set, frozenset)):
            seen[id(v)] = len(seen)
            return {"$": "set", "v": [enc(x, depth + 1) for x in v]}
        if isinstance(v, dict):
            seen[id(v)] = len(seen)
            if all(isinstance(k, str) for k in v):
                entries = [(k, enc(x, depth + 1)) for k, x in v.items()]
                return {"$": "obj", "v": [list(e) for e in entries]} if "$" in v else dict(entries)
            return {"$": "map", "v": [[enc(k, depth + 1), enc(x, depth + 1)] for k, x in v.items()]}
        if isinstance(v, BaseException):
            return {"$": "error", "name": type(v).__name__, "message": str(v), "stack": ""}
        return {"$": "repr", "v": repr(v)}

    return enc(root, 0)


class Capture:
    """fds 1 and 2 redirected into memory files for one call, then put back."""

    def __enter__(self):
        self.saved, self.files = [], []
        for fd, stream in ((1, sys.stdout), (2, sys.stderr)):
            stream.flush()
            f = os.memfd_create(f"sbx-capture-{fd}", os.MFD_CLOEXEC)
            self.saved.append(os.dup(fd))
            self.files.append(f)
            os.dup2(f, fd)
        return self

    def __exit__(self, *exc):
        self.text = []
        for fd, stream, saved, f in zip((1, 2), (sys.stdout, sys.stderr), self.saved, self.files):
            try:
                stream.flush()
            except Exception:
                pass
            os.dup2(saved, fd)
            os.close(saved)
            size = os.lseek(f, 0, os.SEEK_END)
            data = os.pread(f, MAX_CAPTURE, 0)
            os.close(f)
            text = data.decode("utf-8", "replace")
            if size > MAX_CAPTURE:
                text += f"\n[sbx: {size - MAX_CAPTURE} more bytes not kept]\n"
            self.text.append(text)
        return False


class Session:
    def __init__(self):
        self.ns = {"__name__": "__main__", "__builtins__": __builtins__}
        self.loop = asyncio.new_event_loop()
        self.cells = 0

    def compile(self, source, mode):
        self.cells += 1
        name = f"<cell-{self.cells}>"
        linecache.cache[name] = (len(source), None, source.splitlines(True), name)
        flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        return name, (lambda tree: compile(tree, name, mode, flags=flags))

    def run(self, code):
        result = eval(code, self.ns)
        if asyncio.iscoroutine(result):
            result = self.loop.run_until_complete(result)
        return result

    def eval(self, source):
        name, comp = self.compile(source, "exec")
        tree = ast.parse(source, name)
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        if tree.body:
            self.run(comp(tree))
        if last is None:
            return None
        return self.run(compile(last, name, "eval", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT))

    def call(self, fn, args):
        f = self.run(compile(fn, "<call>", "eval", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT))
        result = f(*args)
        if asyncio.iscoroutine(result):
            result = self.loop.run_until_complete(result)
        return result


def on_alarm(signum, frame):
    raise Timeout()


def describe(err, timeout):
    # The traceback of the user's code only: the driver's own frames (its call into the cell, the
    # timer's handler) are left out.
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename != __file__]
    head = "Traceback (most recent call last):\n" + "".join(traceback.format_list(frames)) if frames else ""
    text = head + "".join(traceback.format_exception_only(type(err), err))
    if isinstance(err, Timeout):
        return {"type": "TimeoutError", "message": f"interrupted after {timeout:g} s; the session and its state are kept", "traceback": text}
    return {"type": type(err).__name__, "message": str(err), "traceback": text}


def handle(session, req):
    timeout = req.get("timeout")
    out = {"id": req["id"]}
    cap = Capture()
    try:
        with cap:
            try:
                if timeout:
                    signal.setitimer(signal.ITIMER_REAL, timeout / 1000)
                if req["op"] == "eval":
                    value = session.eval(req["code"])
                elif req["op"] == "call":
                    value = session.call(req["fn"], req["args"])
                else:
                    raise ValueError(f"unknown request {req['op']}")
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        out.update(ok=True, value=encode(value), repr=None if value is None else repr(value))
    except BaseException as err:  # noqa: BLE001 - everything the code raised goes back to the caller
        out.update(ok=False, error=describe(err, (timeout or 0) / 1000))
    out["stdout"], out["stderr"] = getattr(cap, "text", ["", ""])
    line = json.dumps(out, allow_nan=False)
    if len(line) > MAX_VALUE:
        line = json.dumps({"id": req["id"], "ok": False, "stdout": "", "stderr": "",
                           "error": {"type": "ValueError", "message": f"the result is {len(line)} bytes as JSON, more than the {MAX_VALUE} a call may return", "traceback": ""}})
    return line


def main():
    requests = os.fdopen(3, "rb")
    replies = os.fdopen(4, "wb", buffering=0)
    os.set_inheritable(3, False)
    os.set_inheritable(4, False)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    signal.signal(signal.SIGALRM, on_alarm)
    sys.argv = ["<repl>", *sys.argv[1:]]
    session = Session()
    replies.write(b'{"t":"ready"}\n')
    while True:
        try:
            line = requests.readline()
        except KeyboardInterrupt:
            continue  # an interrupt between calls has nothing to stop
        if not line:
            return
        replies.write(handle(session, json.loads(line)).encode() + b"\n")


main()
