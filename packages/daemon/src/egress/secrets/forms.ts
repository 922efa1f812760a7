/**
 * Every spelling in which a secret's value can come back in a response, so scrubbing finds it
 * however an upstream echoes it.
 */
import { MIN_VALUE_LENGTH } from "./spec.js";

/**
 * The forms a value can take in a response: itself; as JSON writes it with `/` escaped and as
 * a URL percent-encodes it (values hold no other character an encoder rewrites); its base64
 * encoding in standard and URL-safe alphabets at each of the three alignments it can have inside
 * a longer encoded text (e.g. an echoed `Authorization: Basic` of `user:value`), only the
 * characters that depend on the value alone; and its hex, lower and upper case (an upstream
 * that hex-dumps what it got). Forms shorter than the minimum are left out. An upstream can
 * always transform a value some other way: scrubbing catches echoes, and a secret goes only to
 * the hosts it names in the first place.
 */
export function valueForms(value: string): string[] {
  const bytes = Buffer.from(value, "latin1");
  const percent = encodeURIComponent(value);
  const forms = new Set<string>([value, value.replace(/\//g, "\\/"), percent, percent.replace(/%[0-9A-F]{2}/g, (e) => e.toLowerCase())]);
  for (let k = 0; k < 3; k++) {
    const encoded = Buffer.concat([Buffer.alloc(k), bytes]).toString("base64");
    const core = encoded.slice(Math.ceil((4 * k) / 3), Math.floor(((k + bytes.length) * 8) / 6));
    if (core.length < MIN_VALUE_LENGTH) continue;
    forms.add(core);
    forms.add(core.replace(/\+/g, "-").replace(/\//g, "_"));
  }
  const hex = bytes.toString("hex");
  forms.add(hex).add(hex.toUpperCase());
  return [...forms];
}
