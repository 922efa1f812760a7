export { Daemon, HostNotReadyError } from "./daemon.js";
export { defaultConfig, applyConfigFile, type DaemonConfig } from "./config.js";
export { checkHost, formatChecks, type Check } from "./doctor.js";
export { buildPolicy, hostArch, type SeccompArch } from "./seccomp/policy.js";
export { dynmodsState, findCgroup2Mount } from "./cgroups/dynmods.js";
