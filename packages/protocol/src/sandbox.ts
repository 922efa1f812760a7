import { Type } from "@sinclair/typebox";
import { byteSize, Duration, EnvMap, Obj, SandboxId, StringMap } from "./common.js";
import { RootRef, VolumeMounts } from "./volumes.js";

export const SandboxStatus = Type.Union([Type.Literal("running"), Type.Literal("stopped")], {
  description: "Whether the sandbox is alive.",
});

export const SandboxInfo = Obj(
  {
    id: SandboxId,
    labels: StringMap("Labels given at create."),
    createdAt: Type.String({ format: "date-time", description: "ISO 8601 creation time." }),
    expiresAt: Type.Union([Type.String({ format: "date-time" }), Type.Null()], {
      description: 'When the sandbox will be killed; null for a "session" sandbox.',
    }),
    status: SandboxStatus,
  },
  { description: "A sandbox as listed." },
);

export const SecretSpec = Obj(
  {
    hosts: Type.Array(Type.String({ minLength: 1, maxLength: 255 }), {
      minItems: 1,
      maxItems: 64,
      description: "Host names (allowNet grammar: name, *.domain, optional :port) the value may be sent to; they are added to allowNet.",
    }),
    value: Type.String({ minLength: 1, maxLength: 65536, description: "The real value (printable ASCII, at least 8 characters). It stays in the daemon's memory; the sandbox sees a placeholder." }),
    body: Type.Optional(Type.Boolean({ description: "Also substitute the placeholder in request bodies (default: headers only)." })),
  },
  { description: "A secret: the sandbox's variable of the same name holds SBX_SECRET_<random>, which the egress proxy swaps for the value only in HTTPS requests to these hosts." },
);

/**
 * What a sandbox gets when `create` does not say: the one place these figures are written down
 * (the daemon, the SDKs' documentation and the generated Python read them from here).
 */
export const LIMIT_DEFAULTS = { memory: "1280MiB", cpus: 1, disk: "10GiB" } as const;

export const CreateParams = Obj({
  memory: Type.Optional(byteSize(`Memory cap (default ${LIMIT_DEFAULTS.memory}).`)),
  cpus: Type.Optional(Type.Number({ minimum: 0.01, maximum: 1024, description: `CPU quota in cores (default ${LIMIT_DEFAULTS.cpus}; the kernel's smallest quota is 0.01).` })),
  disk: Type.Optional(byteSize(`Writable storage cap: home and /tmp (default ${LIMIT_DEFAULTS.disk}).`)),
  timeout: Type.Optional(
    Type.Union([Type.Literal("session"), Duration], {
      description: '"session" (default): killed when the creating connection goes away; or a duration.',
      errorMessage: 'must be "session" or a duration such as "30s", "5m", "2h" or "1h30m"',
    }),
  ),
  env: Type.Optional(EnvMap),
  allowNet: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 300 }), { maxItems: 256 })),
  secrets: Type.Optional(Type.Record(Type.String({ pattern: "^[A-Za-z_][A-Za-z0-9_]{0,127}$" }), SecretSpec, { maxProperties: 64, additionalProperties: false, errorMessage: "must map secret names (letters, digits, _) to { hosts, value }" })),
  labels: Type.Optional(StringMap("Labels for finding the sandbox later with list().", 64)),
  volumes: Type.Optional(VolumeMounts),
  root: Type.Optional(RootRef),
});

export const CreateResult = Obj(
  {
    ...SandboxInfo.properties,
    warnings: Type.Optional(
      Type.Array(Type.String({ maxLength: 1000 }), {
        maxItems: 16,
        description: "What the caller should know about the sandbox as created: a limit this daemon cannot enforce here, a disk cap that is not reserved.",
      }),
    ),
  },
  { description: "The new sandbox, and any warnings about it." },
);
export const IdParams = Obj({ id: SandboxId });
export const ListParams = Obj({ labels: Type.Optional(StringMap("Only sandboxes carrying all of these labels.", 64)) });
export const ListResult = Type.Array(SandboxInfo);
export const ExtendTimeoutParams = Obj({ id: SandboxId, duration: Duration });
export const ExtendTimeoutResult = Obj({ expiresAt: Type.String({ format: "date-time" }) });

export const SandboxExitReason = Type.Union(
  [Type.Literal("killed"), Type.Literal("timeout"), Type.Literal("session"), Type.Literal("error")],
  { description: "Why a sandbox stopped." },
);
export const SandboxExitNotification = Obj({
  id: SandboxId,
  reason: SandboxExitReason,
  message: Type.Optional(Type.String({ maxLength: 4096 })),
});

export const Usage = Obj(
  {
    cpuSeconds: Type.Number({ minimum: 0, description: "CPU time used by every process of the sandbox." }),
    memoryPeakBytes: Type.Integer({ minimum: 0 }),
    memoryGbSeconds: Type.Number({ minimum: 0, description: "Memory in use integrated over wall time (sampled each second)." }),
    diskBytes: Type.Integer({ minimum: 0, description: "Bytes in use on the writable storage (home + /tmp)." }),
    wallSeconds: Type.Number({ minimum: 0 }),
    egress: Obj({
      requests: Type.Integer({ minimum: 0 }),
      blocked: Type.Integer({ minimum: 0 }),
      bytesOut: Type.Integer({ minimum: 0 }),
      bytesIn: Type.Integer({ minimum: 0 }),
    }),
    approximate: Type.Boolean({ description: "True when figures come from per-process accounting, not a cgroup (rootless mode)." }),
    status: SandboxStatus,
  },
  { description: "What a sandbox used; final figures stay readable for 24 hours after it ends, also across daemon restarts." },
);

export const EgressEvent = Obj({
  time: Type.String({ format: "date-time" }),
  host: Type.String({ maxLength: 300 }),
  port: Type.Integer({ minimum: 0, maximum: 65535 }),
  allowed: Type.Boolean(),
  reason: Type.Optional(Type.String({ maxLength: 2000, description: "Why it was refused." })),
  method: Type.String({ maxLength: 32, description: '"CONNECT" for tunnels, else the HTTP method.' }),
  secret: Type.Optional(Type.String({ maxLength: 128, description: "The secret whose placeholder a refused request carried (its name, never its value)." })),
});
export const AllowNetParams = Obj({ id: SandboxId, allowNet: Type.Array(Type.String({ minLength: 1, maxLength: 300 }), { maxItems: 256 }) });
export const EgressLogParams = Obj({ id: SandboxId, limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })) });
export const EgressLogResult = Type.Array(EgressEvent);
export const WatchNetworkParams = Obj({ id: SandboxId, enabled: Type.Boolean() });
export const NetworkNotification = Obj({ id: SandboxId, event: EgressEvent });
