import { Type } from "@sinclair/typebox";
import { Obj } from "./common.js";

const Bytes = (description: string) => Type.Integer({ minimum: 0, description });

/**
 * How full a daemon's host is, in the terms a placement decision needs: what its live
 * sandboxes were promised (their caps) beside what the host has and has free right now.
 */
export const HostCapacity = Obj(
  {
    sandboxes: Obj({
      live: Type.Integer({ minimum: 0, description: "Sandboxes handed out to tokens and not yet stopped (the warm pool is not counted)." }),
      max: Type.Integer({ minimum: 1, description: "The most this daemon runs at once (config maxSandboxes); creates beyond it are refused." }),
    }),
    memory: Obj({
      totalBytes: Bytes("The host's memory."),
      availableBytes: Bytes("Memory the kernel could hand out now without swapping (MemAvailable)."),
      committedBytes: Bytes("The memory caps of the live sandboxes, added up."),
    }),
    disk: Obj({
      totalBytes: Bytes("Size of the file system holding the state dir (and, in root mode, the sandboxes' storage)."),
      freeBytes: Bytes("Free space on it, for unprivileged writers."),
      committedBytes: Bytes("The disk caps of the live sandboxes, added up."),
    }),
    cpus: Obj({
      count: Type.Integer({ minimum: 1, description: "CPUs this daemon may use." }),
      committed: Type.Number({ minimum: 0, description: "The CPU quotas of the live sandboxes, in cores, added up." }),
    }),
  },
  { description: "Live sandboxes and their caps against the host's memory, disk and CPUs." },
);

/** What a daemon says about itself to its operator (and to a fleet gateway, which uses the operator token). */
export const DaemonInfo = Obj(
  {
    version: Type.String({ maxLength: 64, description: "The daemon's version." }),
    mode: Type.Union([Type.Literal("root"), Type.Literal("rootless")], { description: "Root mode (cgroups, own host uids) or rootless." }),
    idPrefix: Type.Union([Type.String({ pattern: "^[a-z0-9]{1,16}$" }), Type.Null()], {
      description: 'The prefix in every sandbox id this daemon makes ("sbx_<prefix>_..."), so a gateway can tell which host holds a sandbox; null without one.',
    }),
    draining: Type.Boolean({ description: "True while the daemon refuses new sandboxes and lets its running ones finish." }),
    capacity: HostCapacity,
    features: Type.Optional(
      Type.Array(Type.String({ maxLength: 64 }), {
        maxItems: 64,
        description:
          'What this daemon does beyond what every sbx daemon does, for a gateway to rely on: "bind" (it holds a connection with bind= in its URL to its one sandbox, so a gateway may pass such a connection through unread). Absent from daemons older than the feature.',
      }),
    ),
  },
  { description: "A daemon: its version, mode, id prefix, whether it drains, and how full its host is." },
);

export const DrainParams = Obj({
  draining: Type.Optional(Type.Boolean({ description: "true (default): refuse new sandboxes from now on; false: accept them again." })),
});
