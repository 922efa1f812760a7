/**
 * Content codings as the proxy reads them (always as streams, on libuv's threads) and compressed
 * request bodies, which it holds while it decodes them to look for placeholders: bounded in
 * codings, bytes held (per sandbox and daemon-wide), bytes decoded and decodes at once.
 */
import type { IncomingMessage } from "node:http";
import { Transform, Writable } from "node:stream";
import { pipeline as pipelineAsync } from "node:stream/promises";
import { createBrotliDecompress, createGunzip, createInflate } from "node:zlib";
import { hostPort } from "../policy/host.js";
import type { RefusalStatus } from "./http.js";
import { decodeSlot, type SandboxEgressBudgets } from "./limits.js";
import { PLACEHOLDER_LENGTH, SecretBlocked, type Destination, type SecretSet } from "../secrets/secrets.js";

/** Encodings the proxy can read (always as streams, on libuv's threads: never on the daemon's own). */
export const CODINGS: Record<string, () => Transform> = {
  gzip: createGunzip,
  "x-gzip": createGunzip,
  deflate: createInflate,
  br: createBrotliDecompress,
};
export const READABLE_ENCODINGS = new Set([...Object.keys(CODINGS), "identity"]);
/** Content codings the proxy unwraps in one body; more are refused (a stack of hundreds once froze the daemon). */
export const MAX_CODINGS = 4;
/** A compressed request body is read whole to look for placeholders: at most this much of it, and this much decoded. */
export const MAX_COMPRESSED_BODY = 16 * 1024 * 1024;
const MAX_DECODED_BODY = 64 * 1024 * 1024;

export const decoder = (coding: string): Transform => CODINGS[coding]!();


/** A request body the proxy will not forward, with the status that says why. */
export class BodyRefused extends Error {
  constructor(readonly status: RefusalStatus, message: string) {
    super(message);
  }
}

/**
 * Reads a compressed request body, holding it (it goes on as it came) while it is decoded as
 * a stream and searched for placeholders; any placeholder refuses the request. Bounded
 * everywhere: at most {@link MAX_CODINGS} codings, {@link MAX_COMPRESSED_BODY} held (drawn from
 * the sandbox's and the daemon's held-bytes budgets), {@link MAX_DECODED_BODY} decoded, and one
 * decode per sandbox at a time in a small daemon-wide pool. The request stream is never
 * destroyed, so the refusal still reaches the client.
 */
export async function readCompressed(req: IncomingMessage, encoded: string[], secrets: SecretSet, to: Destination, budgets: SandboxEgressBudgets): Promise<{ body: Buffer; release: () => void }> {
  // Nothing may flow (and be lost) while this waits for its turn to decode.
  req.pause();
  const where = hostPort(to.host, to.port);
  if (encoded.length > MAX_CODINGS) return refuseAfterBody(req, new BodyRefused(415, `a request body to ${where} has ${encoded.length} content codings; the proxy reads at most ${MAX_CODINGS} to look for secrets`));
  const unknown = encoded.find((c) => !CODINGS[c]);
  if (unknown) return refuseAfterBody(req, new BodyRefused(415, `a request body in content-encoding '${unknown.slice(0, 40)}' cannot be inspected for secrets, so it is refused`));
  const chunks: Buffer[] = [];
  let size = 0;
  const release = () => {
    budgets.held.give(size);
    size = 0;
  };
  const hold = new Transform({
    transform(chunk: Buffer, _enc, done) {
      if (size + chunk.length > MAX_COMPRESSED_BODY) return done(new BodyRefused(413, `a compressed request body to ${where} is over ${MAX_COMPRESSED_BODY / 1048576} MiB; the proxy reads such bodies whole to look for secrets`));
      if (!budgets.held.take(chunk.length)) return done(new BodyRefused(503, `the proxy already holds as many request bodies of this sandbox as it may (${budgets.held.limit / 1048576} MiB, or the daemon's limit); try again`));
      size += chunk.length;
      chunks.push(chunk);
      done(null, chunk);
    },
  });
  let decoded = 0;
  const count = new Transform({
    transform(chunk: Buffer, _enc, done) {
      decoded += chunk.length;
      if (decoded > MAX_DECODED_BODY) return done(new BodyRefused(413, `a compressed request body to ${where} decodes to over ${MAX_DECODED_BODY / 1048576} MiB; the proxy refuses it rather than look through all of it`));
      done(null, chunk);
    },
  });
  const free = await decodeSlot(budgets);
  req.pipe(hold);
  try {
    await pipelineAsync([hold, ...[...encoded].reverse().map(decoder), count, placeholderScanner(secrets, where)]);
  } catch (err) {
    release();
    free();
    req.unpipe(hold);
    if (err instanceof SecretBlocked || err instanceof BodyRefused) return refuseAfterBody(req, err);
    return refuseAfterBody(req, new BodyRefused(400, `a request body in content-encoding '${encoded.join(", ")}' to ${where} cannot be decoded to look for secrets (${(err as Error).message}), so it is refused`));
  }
  free();
  return { body: Buffer.concat(chunks), release };
}

/**
 * Rejects with `err` once the rest of the request body has been read and dropped (at most
 * 32 MiB, for at most 10 s): the refusal closes the connection, and a client still sending
 * into a closed socket gets a reset instead of the answer.
 */
async function refuseAfterBody(req: IncomingMessage, err: Error): Promise<never> {
  if (!req.complete) {
    await new Promise<void>((resolve) => {
      let dropped = 0;
      const timer = setTimeout(resolve, 10_000);
      timer.unref();
      const done = () => (clearTimeout(timer), resolve());
      req.on("data", (chunk: Buffer) => {
        dropped += chunk.length;
        if (dropped > 32 << 20) done();
      });
      req.once("end", done);
      req.once("close", done);
      req.resume();
    });
  }
  throw err;
}

/** A sink that fails with {@link SecretBlocked} at the first placeholder of the sandbox in what it is written, across chunk boundaries. */
function placeholderScanner(secrets: SecretSet, where: string): Writable {
  let tail = "";
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      const text = tail + chunk.toString("latin1");
      const found = secrets.find(text)[0];
      if (found) return done(new SecretBlocked(found.name, `secret ${found.name} is in a compressed request body to ${where}; compressed bodies are never substituted, send it uncompressed`));
      tail = text.slice(-(PLACEHOLDER_LENGTH - 1));
      done();
    },
  });
}
