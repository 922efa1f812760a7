// Parsing lives in @sbx/protocol beside the schema patterns, so what validation accepts is what parses.
export { parseBytes, parseDuration } from "@sbx/protocol";
