// Python spellings of schema names: the one place a wire name becomes an identifier.

const PY_KEYWORDS = new Set(["from", "import", "class", "def", "global", "lambda", "pass", "raise", "return", "try", "while", "with", "yield", "in", "is", "not", "or", "and", "as", "assert", "break", "continue", "del", "elif", "else", "except", "finally", "for", "if", "nonlocal", "async", "await", "None", "True", "False"]);

/** Schema field name -> Python identifier: `allowNet` -> `allow_net`, `from` -> `from_`. */
export const snake = (name) => {
  const s = name.replace(/([a-z0-9])([A-Z])/g, "$1_$2").replace(/([A-Z])([A-Z][a-z])/g, "$1_$2").toLowerCase();
  return PY_KEYWORDS.has(s) ? `${s}_` : s;
};

/** `fs.readDir` -> `FsReadDir`, the stem of the class names derived from a method. */
export const pascal = (name) => name.split(/[._]/).map((p) => p[0].toUpperCase() + p.slice(1)).join("");

/** Nicer names for shapes first met under a derived name. */
export const RENAMES = {
  SandboxConnectResult: "SandboxInfo",
  SandboxCreateResult: "CreatedSandbox",
  SandboxUsageResult: "Usage",
  SandboxUsageResultEgress: "EgressUsage",
  SandboxCreateParamsSecretsValue: "SecretSpec",
  FsStatResult: "FileInfo",
  FsReadDirResultItem: "DirEntry",
  ProcessExitNotificationStatus: "ExitStatus",
  ProcessListResultProcessesItemStatus: "ExitStatus",
  ProcessListResultProcessesItemStdout: "OutputSpan",
  ProcessListResultProcessesItem: "ProcessListing",
  VolumeCreateResult: "VolumeInfo",
  VolumeCreateResultBaseSnapshot: "SnapshotRef",
  VolumeSnapshotResult: "SnapshotInfo",
  SandboxSnapshotResult: "SnapshotInfo",
  SandboxSnapshotResultVolume: "VolumeRef",
  VolumeSnapshotResultVolume: "VolumeRef",
  VolumeListParams: "ListOptions",
};
