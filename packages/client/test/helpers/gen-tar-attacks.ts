// Writes the Python tests' copy of the hostile tar table (tar-attacks.ts): npx tsx packages/client/test/helpers/gen-tar-attacks.ts
import { writeFileSync } from "node:fs";
import { TAR_ATTACKS_JSON, tarAttacksJson } from "./tar-attacks.js";

writeFileSync(TAR_ATTACKS_JSON, tarAttacksJson());
