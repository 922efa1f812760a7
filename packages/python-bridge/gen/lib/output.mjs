// Writing the generated files, or (with --check) failing when a committed one differs.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";

/** Writes each changed file (or reports it under `check`); returns how many were out of date. */
export function writeAll(files, root, check) {
  let stale = 0;
  for (const [file, text] of files) {
    const current = existsSync(file) ? readFileSync(file, "utf8") : null;
    if (current === text) continue;
    stale++;
    if (check) {
      console.error(`out of date: ${file.slice(root.length + 1)}`);
    } else {
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, text);
      console.log(`wrote ${file.slice(root.length + 1)}`);
    }
  }
  return stale;
}
