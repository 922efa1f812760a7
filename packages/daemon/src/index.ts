export { Daemon, HostNotReadyError } from "./daemon.js";
export { defaultConfig, applyConfigFile, type DaemonConfig } from "./config.js";
export { checkHost, formatChecks, type Check } from "./doctor.js";
export { buildPolicy, hostArch, type SeccompArch } from "./seccomp/policy.js";
export { dynmodsState, findCgroup2Mount } from "./cgroups/dynmods.js";
// For bench/: the per-entry /etc binds the daemon's /etc view replaced, replayed as the floor they were.
export { ETC_SHARED, linkedEtcPaths } from "./sandbox/etc.js";
