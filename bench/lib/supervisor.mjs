// Talks to a replayed supervisor over its channel (stdin/stdout) the way the daemon does, so a
// floor's processes run as the daemon's do: spawned by the supervisor, under its seccomp filter.
// Framing (packages/daemon/src/channel/framing.ts): u32 length of what follows | u8 op | u32 stream id | payload.
import { now } from "./env.mjs";
import { spawnRawBwrap } from "./floors.mjs";
import { waitNoSandboxProcs } from "./proc.mjs";

const OP = { data: 0, end: 1, credit: 2, abort: 3, msg: 4 };

function frame(op, id, payload = Buffer.alloc(0)) {
  const head = Buffer.allocUnsafe(9);
  head.writeUInt32BE(5 + payload.length, 0);
  head.writeUInt8(op, 4);
  head.writeUInt32BE(id, 5);
  return Buffer.concat([head, payload]);
}

/**
 * bwrap + supervisor with the captured launch, as host uid `uid`; resolves once its "ready"
 * message arrived. `run` spawns one command with stdout piped and waits for its exit.
 */
export async function startSupervisor(capture, uid) {
  const t0 = now();
  const child = spawnRawBwrap(capture, uid);
  let err = "";
  child.stderr.on("data", (d) => (err += d));
  const exited = new Promise((r) => child.once("exit", r));
  // messages by key ("ready", "reply 3", "exit 42", "end 7"), whichever comes first: the one awaited or the awaiting
  const waiting = new Map();
  const arrived = new Map();
  const streams = new Map(); // stream id → chunks
  const expect = (key) => {
    if (!arrived.has(key)) return new Promise((resolve) => waiting.set(key, resolve));
    const value = arrived.get(key);
    arrived.delete(key);
    return Promise.resolve(value);
  };
  const deliver = (key, value) => {
    const resolve = waiting.get(key);
    waiting.delete(key);
    if (resolve) resolve(value);
    else arrived.set(key, value);
  };
  const credit = (id, bytes) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(bytes, 0);
    return frame(OP.credit, id, b);
  };
  let buf = Buffer.alloc(0);
  child.stdout.on("data", (d) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
      const len = buf.readUInt32BE(0);
      const op = buf.readUInt8(4);
      const id = buf.readUInt32BE(5);
      const payload = buf.subarray(9, 4 + len);
      buf = buf.subarray(4 + len);
      if (op === OP.msg) {
        const m = JSON.parse(payload.toString());
        deliver(m.t === "reply" ? `reply ${m.id}` : m.t === "exit" ? `exit ${m.pid}` : m.t, m);
      } else if (op === OP.data) {
        streams.get(id)?.push(Buffer.from(payload));
        child.stdin.write(credit(id, payload.length));
      } else if (op === OP.end || op === OP.abort) deliver(`end ${id}`, payload.toString());
    }
  });
  const ready = await Promise.race([
    expect("ready"),
    exited.then(() => { throw new Error(`the replayed supervisor exited before it was ready: ${err}`); }),
  ]);
  const startMs = now() - t0;
  let nextId = 1;
  return {
    startMs,
    pid: ready.pid,
    /** Runs `cmd args` inside, stdout piped, stdin and stderr /dev/null: its stdout and exit. */
    async run(cmd, args, env = { PATH: "/usr/local/bin:/usr/bin:/bin", HOME: "/home/user" }) {
      const id = nextId++;
      const sid = 2 * id + 1;
      streams.set(sid, []);
      const ended = expect(`end ${sid}`);
      const replied = expect(`reply ${id}`);
      child.stdin.write(frame(OP.msg, 0, Buffer.from(JSON.stringify({ t: "call", id, m: "process.spawn", p: { cmd, args, env, stdout: sid } }))));
      const reply = await replied;
      if (!reply.ok) throw new Error(`spawn ${cmd} in the replayed supervisor: ${reply.code} ${reply.message}`);
      const status = await expect(`exit ${reply.v.pid}`);
      await ended;
      const stdout = Buffer.concat(streams.get(sid)).toString();
      streams.delete(sid);
      return { stdout, status };
    },
    /** Closes its channel (the supervisor exits) and waits until its processes are gone. */
    async close() {
      child.stdin.end();
      const timer = setTimeout(() => child.kill("SIGKILL"), 2000);
      await exited;
      clearTimeout(timer);
      await waitNoSandboxProcs(uid);
    },
  };
}
