// Build a root image with Python packages once, then start ten sandboxes from it in parallel.
// Needs a root-mode daemon whose host has mmdebstrap and reaches its Debian mirror.
// Run: npx tsx python-image.ts  (SBX_URL / SBX_TOKEN, or the local daemon)
import { Client, InUseError, Sandbox } from "@sbx/client";

const client = new Client();
const slug = `py-image-${Date.now().toString(36)}`;

// 1. Once: Debian minbase + Python and a library, from Debian's packages (tens of seconds).
const started = performance.now();
const image = await client.images.build({ slug, packages: ["python3", "python3-yaml"] });
console.log(`built ${image.slug} (${(image.flattenedSize / 2 ** 20).toFixed(0)} MiB) in ${((performance.now() - started) / 1000).toFixed(0)} s`);

try {
  // 2. Ten sandboxes boot from it at once; each gets a private writable layer over the image.
  const t0 = performance.now();
  const created = await Promise.allSettled(Array.from({ length: 10 }, () => Sandbox.create({ root: image.slug })));
  const boxes = created.flatMap((c) => (c.status === "fulfilled" ? [c.value] : []));
  try {
    for (const c of created) if (c.status === "rejected") throw c.reason;
    console.log(`10 sandboxes from the image in ${(performance.now() - t0).toFixed(0)} ms`);
    const answers = await Promise.all(
      boxes.map((sb, i) => sb.sh`python3 -c ${`import yaml; print(yaml.safe_dump({"sandbox": ${i}, "squares": [n * n for n in range(4)]}, default_flow_style=True).strip())`}`.text()),
    );
    for (const line of answers) console.log(line.trim());

    // 3. Root inside a sandbox of its own: a system directory written with sudo stays in that sandbox's layer.
    const [first, second] = boxes as [Sandbox, Sandbox];
    await first.sh`printf '#!/bin/sh\necho hello from /usr/local/bin' > /usr/local/bin/hello && chmod 755 /usr/local/bin/hello`.sudo();
    console.log(`first: ${(await first.sh`hello`.text()).trim()}`);
    console.log(`second has it: ${(await second.sh`test -e /usr/local/bin/hello`.noThrow()).status.success}`);
    console.log(`the user cannot write there: ${!(await first.sh`touch /usr/local/bin/x`.noThrow()).status.success}`);
  } finally {
    await Promise.all(boxes.map((sb) => sb.kill()));
  }
} finally {
  // Deleting waits for the sandboxes booted from it to be gone.
  for (let i = 0; ; i++) {
    try {
      await client.snapshots.delete(image.slug);
      break;
    } catch (err) {
      if (i > 100 || !(err instanceof InUseError)) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
