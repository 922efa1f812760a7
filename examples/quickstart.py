"""sbx quick start in Python: a sandbox, a process with streaming output, files in and out.

Mirrors examples/quickstart.ts. Run with `python examples/quickstart.py` (starts a local
daemon if none is running and the `sbx` CLI is installed; SBX_URL/SBX_TOKEN point elsewhere).
"""

from __future__ import annotations

import shlex
import tempfile
from pathlib import Path

from sbx import Sandbox


def main() -> None:
    with Sandbox.create(timeout="5m", labels={"example": "quickstart"}) as sb:
        print(f"created {sb.id}")

        # A one-liner: every argument after the script is shell-quoted.
        who = sb.sh('echo "$(id -un) on $(hostname), kernel $(uname -r)"').text()
        print(who)

        # Code an agent wrote, run with live output.
        sb.fs.write_text_file("fib.py", "import sys\na, b = 0, 1\nfor _ in range(int(sys.argv[1])):\n    print(a, flush=True)\n    a, b = b, a + b\n")
        child = sb.spawn("python3", args=["fib.py", "10"])
        assert child.stdout is not None
        lines: list[str] = []
        for chunk in child.stdout:
            lines.extend(chunk.decode().split())
        print(f"fib: {' '.join(lines)} (exit {child.wait().code})")

        # Whole directory trees move as tar streams, symlinks and all.
        with tempfile.TemporaryDirectory(prefix="sbx-quickstart-") as tmp:
            local = Path(tmp)
            (local / "project").mkdir()
            (local / "project" / "data.csv").write_text("x,y\n1,2\n3,4\n")
            sb.fs.upload(local / "project", "/home/user/project")
            code = "import csv; print(sum(int(r['y']) for r in csv.DictReader(open('data.csv'))))"
            total = sb.sh(f"cd project && python3 -c {shlex.quote(code)} | tee total.txt").text()
            print(f"sum of y computed in the sandbox: {total}")
            sb.fs.download("/home/user/project", local / "result")
            print(f"downloaded total.txt: {(local / 'result' / 'total.txt').read_text().strip()}")

        # Failures are typed errors carrying the exit status.
        res = sb.sh("cat /etc/shadow", check=False)
        print(f"reading /etc/shadow inside: exit {res.status.code} ({(res.stderr_text or '').strip()})")
        print("done: the sandbox is destroyed when the with block ends")


if __name__ == "__main__":
    main()
