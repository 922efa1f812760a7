/**
 * A daemon with an id prefix makes ids "sbx_<prefix>_<random>" for sandboxes, and
 * "vol_<prefix>_<random>" and "snap_<prefix>_<random>" for volumes and snapshots (the random part
 * is alphanumeric): the prefix names the host, so any gateway replica routes a call by its id
 * alone, with no table of sandboxes or volumes to share or lose.
 *
 * @example hostPrefixOf("sbx_n1_x6Gm2K0cZ4bQ9pLrT8vW1yEd")  // "n1"
 * @example hostPrefixOf("vol_n1_x6Gm2K0cZ4bQ9pLrT8vW1yEd")  // "n1"
 * @example hostPrefixOf("sbx_x6Gm2K0cZ4bQ9pLrT8vW1yEd")     // null: a daemon without a prefix made it
 */
export function hostPrefixOf(id: string): string | null {
  const m = /^(?:sbx|vol|snap)_([a-z0-9]{1,16})_[A-Za-z0-9]{20,}$/.exec(id);
  return m ? m[1]! : null;
}
