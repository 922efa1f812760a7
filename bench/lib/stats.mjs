// Medians and tails of samples, and how figures are written in RESULTS.md.

export function stats(xs) {
  if (xs.length === 0) return { n: 0, median: NaN, p90: NaN, min: NaN, max: NaN };
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
  const median = s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  return { n: s.length, median, p90: q(0.9), min: s[0], max: s[s.length - 1] };
}

/** For throughputs the pessimistic tail is the low end. */
export const lowP90 = (st) => (st._xs ? [...st._xs].sort((a, b) => a - b)[Math.floor(0.1 * st._xs.length)] : st.min);
export const tput = (xs) => Object.assign(stats(xs), { _xs: xs });

export const f1 = (x) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
export const ms = (st) => `${f1(st.median)} ms (p90 ${f1(st.p90)}, n=${st.n})`;
export const mbs = (st) => (st.n ? `${st.median.toFixed(0)} MB/s (p90-low ${lowP90(st).toFixed(0)}, n=${st.n})` : "no complete run");
export const mb = (x) => `${x.toFixed(x < 10 ? 2 : 1)} MB`;
export const sgn = (x) => `${x >= 0 ? "+" : "−"}${Math.abs(x).toFixed(1)} MB`;
export const ratio = (a, b) => `${(a / b).toFixed(2)}×`;
export const pct = (a, b) => `${((a / b) * 100).toFixed(0)} %`;
export const ok = (cond) => (cond ? "yes" : "**no**");
