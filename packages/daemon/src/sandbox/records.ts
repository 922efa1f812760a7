import { readFileSync } from "node:fs";
import * as fsp from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "../util/log.js";

/**
 * One small file per live sandbox under `<state>/sandboxes`, naming its bwrap pid and that
 * process's start time. A daemon that died without cleaning up (SIGKILL, power loss) is
 * followed by one that reads these, kills whatever of them still runs, and removes them.
 */
export class SandboxRecords {
  constructor(private readonly dir: string, private readonly log: Logger) {}

  async init(): Promise<void> {
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
    await this.reclaim();
  }


  async write(id: string, pid: number): Promise<void> {
    const record = { id, pid, startTime: startTimeOf(pid) };
    await fsp.writeFile(join(this.dir, `${id}.json`), JSON.stringify(record), { mode: 0o600 });
  }

  async remove(id: string): Promise<void> {
    await fsp.rm(join(this.dir, `${id}.json`), { force: true });
  }

  private async reclaim(): Promise<void> {
    const names = await fsp.readdir(this.dir);
    let killed = 0;
    for (const name of names) {
      const path = join(this.dir, name);
      if (name.endsWith(".json")) {
        try {
          const { pid, startTime } = JSON.parse(await fsp.readFile(path, "utf8")) as { pid: number; startTime: string | null };
          if (Number.isInteger(pid) && pid > 1 && startTime !== null && startTimeOf(pid) === startTime) {
            process.kill(pid, "SIGKILL");
            killed++;
          }
        } catch {
          // unreadable or already gone: nothing to kill
        }
      }
      await fsp.rm(path, { recursive: true, force: true });
    }
    if (names.length > 0) {
      this.log.info(`reclaimed ${names.length} leftover sandbox records (${killed} processes still running were killed)`);
    }
  }
}

/**
 * Field 22 of /proc/PID/stat: distinguishes a process from a later one reusing its pid.
 * Null for a zombie (it runs nothing) or a process that is gone.
 */
function startTimeOf(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (fields[0] === "Z") return null;
    return fields[19] ?? null;
  } catch {
    return null;
  }
}
