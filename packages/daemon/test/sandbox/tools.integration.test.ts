import { describe, expect, it } from "vitest";
import { useSandbox } from "../helpers/fixtures.js";
import { ok, runBash } from "../helpers/bash.js";

/**
 * The seccomp filter and the rest of the hardening must not break ordinary tools (issue 3):
 * python3 with threads and subprocesses, node with workers and child processes, git, bash job
 * control, `pip install --user` of a local wheel and `npm install` of a local tarball. Each is
 * run for real inside one sandbox and its exact output checked.
 */

const { sb } = useSandbox();

const run = (script: string, cwd?: string) => runBash(sb, script, cwd ? { cwd } : {});

describe("python3", () => {
  it("runs threads and subprocesses", async () => {
    await sb.fs.writeTextFile(
      "threads.py",
      [
        "import concurrent.futures, os, subprocess, sys, threading",
        "results = [0] * 8",
        "def work(i):",
        "    results[i] = sum(range(i * 1000))",
        "ts = [threading.Thread(target=work, args=(i,)) for i in range(8)]",
        "[t.start() for t in ts]",
        "[t.join() for t in ts]",
        "print('threads', results == [sum(range(i * 1000)) for i in range(8)], threading.active_count())",
        "with concurrent.futures.ThreadPoolExecutor(4) as ex:",
        "    print('pool', sum(ex.map(lambda x: x * x, range(100))))",
        "print('run', subprocess.run(['echo', 'hi'], capture_output=True, text=True).stdout.strip())",
        "print('python', subprocess.check_output([sys.executable, '-c', 'print(6 * 7)'], text=True).strip())",
        "print('shell', subprocess.run('exit 3', shell=True).returncode)",
        "p = subprocess.Popen(['cat'], stdin=subprocess.PIPE, stdout=subprocess.PIPE)",
        "print('pipe', p.communicate(b'through a pipe')[0].decode(), p.returncode)",
        "pid = os.fork()",
        "if pid == 0:",
        "    os._exit(5)",
        "print('fork', os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))",
      ].join("\n"),
    );
    const out = ok(await run("python3 threads.py"), "python3 threads.py");
    expect(out).toBe("threads True 1\npool 328350\nrun hi\npython 42\nshell 3\npipe through a pipe 0\nfork 5\n");
  });

  it("runs a multiprocessing pool", async () => {
    await sb.fs.writeTextFile(
      "mp.py",
      [
        "import multiprocessing as mp",
        "def sq(x):",
        "    return x * x",
        "if __name__ == '__main__':",
        "    for method in ('fork', 'spawn'):",
        "        with mp.get_context(method).Pool(2) as pool:",
        "            print(method, sum(pool.map(sq, range(10))))",
      ].join("\n"),
    );
    expect(ok(await run("python3 mp.py"), "python3 mp.py")).toBe("fork 285\nspawn 285\n");
  });
});

describe("node", () => {
  it("runs worker_threads and child_process", async () => {
    await sb.fs.writeTextFile(
      "workers.js",
      `const { Worker } = require("node:worker_threads");
const cp = require("node:child_process");
const fs = require("node:fs");
const run = (n) => new Promise((resolve, reject) => {
  const w = new Worker("const { parentPort, workerData } = require('node:worker_threads'); let s = 0; for (let i = 0; i < workerData; i++) s += i; parentPort.postMessage(s);", { eval: true, workerData: n });
  w.once("message", resolve);
  w.once("error", reject);
});
(async () => {
  console.log("workers", (await Promise.all([1000, 2000, 3000, 4000].map(run))).join(","));
  console.log("execFileSync", cp.execFileSync("sh", ["-c", "echo $((6 * 7))"], { encoding: "utf8" }).trim());
  const child = cp.spawn(process.execPath, ["-e", "process.stdin.pipe(process.stdout)"]);
  let got = "";
  child.stdout.on("data", (d) => (got += d));
  child.stdin.end("node to node");
  const code = await new Promise((r) => child.on("close", r));
  console.log("spawn", got, code);
  fs.writeFileSync("child.js", "process.send('forked ' + (process.pid !== process.ppid)); process.disconnect();");
  const fork = cp.fork("./child.js");
  console.log("fork", await new Promise((r) => fork.once("message", r)));
  await fs.promises.writeFile("async.txt", "x".repeat(100000));
  console.log("fs", (await fs.promises.readFile("async.txt", "utf8")).length);
})().catch((e) => { console.error(e); process.exit(1); });
`,
    );
    const out = ok(await run("node workers.js"), "node workers.js");
    expect(out).toBe("workers 499500,1999000,4498500,7998000\nexecFileSync 42\nspawn node to node 0\nfork forked true\nfs 100000\n");
  });
});

describe("git", () => {
  it("inits, commits, logs and clones a local repository", async () => {
    const script = [
      "set -e",
      "git config --global user.name 'Sandbox User'",
      "git config --global user.email user@sbx.invalid",
      "git config --global init.defaultBranch main",
      "git init -q repo && cd repo",
      "echo one > a.txt && git add a.txt && git commit -qm first",
      "echo two >> a.txt && git commit -qam second",
      "git log --format=%s",
      "cd ..",
      "git clone -q repo copy-local",
      "git clone -q --no-local file://$PWD/repo copy-file", // through upload-pack and a pipe
      "git -C copy-local log --format=%s | tr '\\n' ' '; echo",
      "git -C copy-file log --format=%an:%s | tr '\\n' ' '; echo",
      "cat copy-file/a.txt",
      "git -C copy-file status --porcelain --branch",
    ].join("\n");
    const out = ok(await run(script), "git");
    expect(out).toBe("second\nfirst\nsecond first \nSandbox User:second Sandbox User:first \none\ntwo\n## main...origin/main\n");
  });
});

describe("bash job control", () => {
  it("backgrounds a job, lists it and brings it back (set -m, no terminal)", async () => {
    const r = await run("set -m; sleep 1 & jobs; fg; echo rc=$?");
    expect(r.err).toBe("");
    expect(r.out).toBe("[1]+  Running                 sleep 1 &\nsleep 1\nrc=0\n");
    expect(r.code).toBe(0);
  });

  it("stops, resumes and waits for jobs in an interactive shell on a pty", async () => {
    // `script` gives bash a terminal, so it runs real job control: process groups, tcsetpgrp, SIGTSTP/SIGCONT.
    await sb.fs.writeTextFile(
      "jobs.sh",
      [
        "sleep 30 &",
        "kill -STOP %1",
        "sleep 0.2; jobs",
        "bg %1 >/dev/null",
        "sleep 0.2; jobs",
        "kill %1; wait %1; echo killed=$?",
        "(exit 4) & wait %%; echo waited=$?",
        "sleep 0.2 & fg %% >/dev/null; echo fg=$?",
        "[ \"$(ps -o tpgid= -p $$ | tr -d ' ')\" = \"$(ps -o pgid= -p $$ | tr -d ' ')\" ] && echo foreground-group=ours",
      ].join("\n") + "\n",
    );
    const r = await run("script -qec 'bash --norc --noprofile -i jobs.sh' /dev/null < /dev/null");
    // Interactive bash numbers even the foreground `sleep 0.2` pauses as jobs and reports them "Done": drop those.
    const lines = r.out.replace(/\r/g, "").split("\n").filter((l) => l && !/^\[\d+\] \d+$/.test(l) && !/^\[\d+\][ +-]\s+Done\s+sleep 0\.2$/.test(l));
    expect(lines).toEqual([
      "[1]+  Stopped                 sleep 30",
      "[1]+  Running                 sleep 30 &",
      "killed=143",
      "waited=4",
      "fg=0",
      "foreground-group=ours",
    ]);
    expect(r.code).toBe(0);
  });
});

describe("package managers", () => {
  it("pip install --user of a local wheel", async () => {
    const pip = await run("python3 -m pip --version");
    if (pip.code !== 0) {
      throw new Error(`pip is not installed on the host (python3 -m pip failed inside the sandbox: ${pip.err.trim()}); CI must install python3-pip`);
    }
    await sb.fs.writeTextFile(
      "mkwheel.py",
      [
        "import base64, hashlib, zipfile",
        "files = {",
        "    'pkg/__init__.py': b'VALUE = 42\\n',",
        "    'x-1.0.dist-info/METADATA': b'Metadata-Version: 2.1\\nName: x\\nVersion: 1.0\\n',",
        "    'x-1.0.dist-info/WHEEL': b'Wheel-Version: 1.0\\nGenerator: sbx-test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n',",
        "}",
        "def digest(data):",
        "    return 'sha256=' + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()",
        "record = ''.join('%s,%s,%d\\n' % (n, digest(d), len(d)) for n, d in files.items()) + 'x-1.0.dist-info/RECORD,,\\n'",
        "files['x-1.0.dist-info/RECORD'] = record.encode()",
        "with zipfile.ZipFile('x-1.0-py3-none-any.whl', 'w', zipfile.ZIP_DEFLATED) as z:",
        "    for n, d in files.items():",
        "        z.writestr(n, d)",
      ].join("\n"),
    );
    ok(await run("python3 mkwheel.py"), "building the wheel");
    // PIP_BREAK_SYSTEM_PACKAGES: Debian marks its python EXTERNALLY-MANAGED (PEP 668), which refuses
    // even --user installs; that is the distribution's policy, not the sandbox's.
    const install = await run(
      "PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --user --no-index --disable-pip-version-check --no-warn-script-location ./x-1.0-py3-none-any.whl",
    );
    ok(install, "pip install --user");
    expect(install.out).toMatch(/^Successfully installed x-1\.0$/m);
    const use = ok(await run("cd /tmp && python3 -c 'import pkg; print(pkg.VALUE, pkg.__file__)' && python3 -m pip show x 2>/dev/null | grep -E '^(Name|Version|Location):'"), "import pkg");
    expect(use).toMatch(/^42 \/home\/sandbox\/\.local\/lib\/python3\.\d+\/site-packages\/pkg\/__init__\.py\nName: x\nVersion: 1\.0\nLocation: \/home\/sandbox\/\.local\/lib\/python3\.\d+\/site-packages\n$/);
  });

  it("npm install of a local tarball", async () => {
    const which = await run("command -v npm && npm --version");
    if (which.code !== 0) throw new Error(`npm is not installed on the host (not found on the sandbox's PATH /usr/local/bin:/usr/bin:/bin); CI must install npm`);
    await sb.fs.mkdir("x-src", { recursive: true });
    await sb.fs.writeTextFile("x-src/package.json", JSON.stringify({ name: "x", version: "1.0.0", main: "index.js", license: "MIT" }));
    await sb.fs.writeTextFile("x-src/index.js", "module.exports = { answer: 42, from: __filename };\n");
    const env = "export npm_config_update_notifier=false npm_config_audit=false npm_config_fund=false;";
    const pack = ok(await run(`${env} cd x-src && npm pack --silent`), "npm pack");
    expect(pack).toBe("x-1.0.0.tgz\n");
    const install = await run(`${env} mkdir -p app && cp x-src/x-1.0.0.tgz app/ && cd app && npm install ./x-1.0.0.tgz --offline --no-audit --no-fund`);
    ok(install, "npm install");
    expect(install.out).toMatch(/added 1 package/);
    const use = ok(await run("cd app && node -e 'const x = require(\"x\"); console.log(x.answer, x.from)' && node -p 'require(\"./package.json\").dependencies.x'"), "require('x')");
    expect(use).toBe("42 /home/sandbox/app/node_modules/x/index.js\nfile:x-1.0.0.tgz\n");
  });
});
