/**
 * Checks one tar entry name and returns its path components, or throws saying why the
 * entry would escape the target directory. Used on every archive sbx unpacks, whichever
 * side produced it.
 */
export function entryParts(name: string): string[] {
  if (name.includes("\0")) throw new TarEntryError(name, "contains a NUL byte");
  if (name.startsWith("/")) throw new TarEntryError(name, "is an absolute path");
  const parts = name.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) throw new TarEntryError(name, "contains '..' and would escape the target directory");
  return parts;
}

/** A tar archive held an entry sbx refuses to unpack. */
export class TarEntryError extends Error {
  readonly code = "EINVAL";
  constructor(readonly entry: string, reason: string) {
    super(`refusing tar entry '${entry.slice(0, 512)}': ${reason}`);
  }
}
