#!/usr/bin/env bash
# Runs the README's quick start exactly as a new user would: each command of its first sh block,
# in order, in this checkout. CI runs this on a clean clone (.ci/run), so the two commands are
# checked together, command 2 (the test command, `pnpm test`) right after command 1 has left its daemon running.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t commands < <(awk '
  /^## Quick start/ { in_section = 1; next }
  in_section && /^```sh/ { in_block = 1; next }
  in_block && /^```/ { exit }
  in_block { sub(/[ \t]+#[ \t].*$/, ""); if (length($0)) print }
' README.md)
if [ ${#commands[@]} -ne 2 ]; then
  echo "readme-commands: expected the README's quick start to hold two commands, found ${#commands[@]}" >&2
  exit 1
fi
for i in "${!commands[@]}"; do
  echo "=== README command $((i + 1)): ${commands[$i]}"
  bash -c "${commands[$i]}"
done
