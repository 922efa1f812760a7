import { Type } from "@sinclair/typebox";
import { Obj, SandboxId, StreamId } from "./common.js";

export const ConnectParams = Obj({
  sandbox: SandboxId,
  port: Type.Integer({ minimum: 1, maximum: 65535, description: "A TCP port on the sandbox's own loopback (127.0.0.1, then ::1)." }),
  input: StreamId,
  output: StreamId,
});

export const ExposeHttpParams = Obj({
  sandbox: SandboxId,
  port: Type.Integer({ minimum: 1, maximum: 65535, description: "The port a server inside the sandbox listens on (its loopback)." }),
  public: Type.Optional(Type.Boolean({ description: "Serve without a token: anyone who can reach the daemon's host can use the URL." })),
});
export const ExposeHttpResult = Obj({
  url: Type.String({ maxLength: 300, description: "http://HOST:PORT/TOKEN/ (or http://HOST:PORT/ when public): a listener of the daemon's, open until the sandbox ends." }),
});
