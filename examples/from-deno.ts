/**
 * Programs from the README of Deno's hosted-sandbox SDK (`@deno/sandbox` 0.13.2), with only the
 * import changed: "Template literal commands with variable interpolation", "Error handling with
 * noThrow()", "Error handling with custom error class", "Set environment variables" and
 * "Control sandbox timeout" (each in a block of its own, as they each declare `sandbox`).
 *   SBX_URL=... SBX_TOKEN=... npx tsx from-deno.ts
 */
import { Sandbox, SandboxCommandError } from "@sbx/client";

{
  await using sandbox = await Sandbox.create();

  // Variables are automatically escaped
  const filename = "file with spaces.txt";
  const content = "Hello, world!";
  await sandbox.sh`echo ${content} > ${filename}`;

  // Arrays are expanded to multiple arguments
  const files = ["file1.txt", "file2.txt", "file3.txt"];
  await sandbox.sh`touch ${files}`;
  await sandbox.sh`rm ${files}`;

  // Get JSON output
  const data = await sandbox.sh`echo '{"count": 42}'`.json<{ count: number }>();
  console.log(data.count); // → 42
}

{
  await using sandbox = await Sandbox.create();

  // Commands throw by default on non-zero exit
  try {
    await sandbox.sh`exit 1`;
  } catch (error) {
    console.log("Command failed:", (error as Error).message);
  }

  // Use noThrow() to handle errors manually
  const result = await sandbox.sh`exit 1`.noThrow();
  console.log("Exit code:", result.status.code); // → 1
  console.log("Success:", result.status.success); // → false
}

{
  await using sandbox = await Sandbox.create();

  try {
    await sandbox.sh`exit 42`;
  } catch (error) {
    if (error instanceof SandboxCommandError) {
      console.log("Exit code:", error.code); // → 42
      console.log("Error message:", error.message);
    }
  }
}

{
  await using sandbox = await Sandbox.create();

  // Set environment variables
  await sandbox.env.set("API_KEY", "secret-key-123");
  await sandbox.env.set("NODE_ENV", "production");

  // Use them in a script
  const apiKey = await sandbox.sh`echo $API_KEY`.text();
  console.log("API_KEY:", apiKey.trim());
}

{
  // Duration-based: keep sandbox alive for a specific time period
  // Useful when you want the sandbox to persist after the script exits
  const sandbox = await Sandbox.create({ timeout: "5m" }); // 5 minutes
  const id = sandbox.id;
  // Close the *connection* to the sandbox; the sandbox keeps running
  await sandbox.close();

  // Later, reconnect to the same sandbox using its ID
  const reconnected = await Sandbox.connect(id);
  await reconnected.sh`echo 'Still alive!'`;

  // You can still forcibly terminate it before its timeout expires
  await reconnected.kill();
  // At this point, the sandbox is no longer reconnectable
}
