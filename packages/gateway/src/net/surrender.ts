import type { Socket } from "node:net";

/** A socket given up to another process: its file descriptor's owner, and bytes read from it that nobody handled. */
export interface Surrendered {
  socket: Socket;
  rest: Buffer;
}

/**
 * Stops Node reading `socket` (in the kernel too: what arrives later stays there for the next
 * owner) and takes back what the stream had read but not emitted. The socket's listeners are
 * removed, so closing this process's descriptor afterwards is not mistaken for the peer leaving.
 */
export function surrender(socket: Socket, unhandled: Buffer[] = []): Surrendered {
  socket.removeAllListeners("data");
  socket.removeAllListeners("close");
  socket.removeAllListeners("end");
  socket.pause();
  // read() below would start the handle reading again (Node's _read) when it had stopped under
  // backpressure: bytes taken from the kernel then would reach nobody.
  (socket as unknown as { _read: () => void })._read = () => {};
  (socket as unknown as { _handle: { readStop(): number } | null })._handle?.readStop();
  const parts = [...unhandled];
  for (let chunk: Buffer | null; (chunk = socket.read() as Buffer | null) !== null; ) parts.push(chunk);
  return { socket, rest: Buffer.concat(parts) };
}
