#!/bin/sh
# Starts `sbx daemon` in a container. On cgroup v2 the container's cgroup is its namespace's
# root, and a cgroup may only hand controllers (memory, cpu, pids) to child cgroups while no
# process sits in it directly ("no internal processes"). So every process here, this shell
# included, moves to a leaf first (as docker-in-docker does); the daemon then makes the
# sandboxes' cgroups beside that leaf, inside the pod's own cgroup and its limits.
set -eu
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  mkdir -p /sys/fs/cgroup/daemon
  for pid in $(cat /sys/fs/cgroup/cgroup.procs); do
    echo "$pid" > /sys/fs/cgroup/daemon/cgroup.procs 2>/dev/null || true
  done
fi
exec sbx daemon "$@"
