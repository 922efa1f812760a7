/** The fenced code blocks of a Markdown file, each named by its section and position. */
import { readFileSync } from "node:fs";

export interface Block {
  /** The file, relative to the repository root. */
  file: string;
  /** `<nearest heading above>#<n>`: n counts the fenced blocks of that section from 1. */
  id: string;
  /** The info string after the opening fence ("ts", "sh", "text", ...); "" when there is none. */
  lang: string;
  /** 1-based line of the opening fence. */
  line: number;
  code: string;
}

export function blocksOf(path: string, file: string): Block[] {
  const lines = readFileSync(path, "utf8").split("\n");
  const blocks: Block[] = [];
  let heading = "(top)";
  let inSection = 0;
  for (let i = 0; i < lines.length; i++) {
    const h = /^#{1,6}\s+(.*)$/.exec(lines[i]!);
    if (h) {
      heading = h[1]!.trim();
      inSection = 0;
      continue;
    }
    const open = /^```(\S*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && !/^```\s*$/.test(lines[j]!); j++) body.push(lines[j]!);
    if (j === lines.length) throw new Error(`${file}:${i + 1}: a code block that is never closed`);
    blocks.push({ file, id: `${heading}#${++inSection}`, lang: open[1]!, line: i + 1, code: body.join("\n") + "\n" });
    i = j;
  }
  return blocks;
}
