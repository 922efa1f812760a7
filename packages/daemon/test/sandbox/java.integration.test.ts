import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useSandbox, requires } from "../helpers/fixtures.js";
import { ok, runBash } from "../helpers/bash.js";
import { startUpstreams, type Upstreams } from "../helpers/upstreams.js";

/**
 * Java and Maven from the host's packages work unchanged (issue 16 items 1, 2): the /etc files
 * their /usr links lead to are bound (OpenJDK's java.security, Maven's m2.conf), and
 * JAVA_TOOL_OPTIONS gives every JVM the egress proxy and a trust store holding the daemon's CA
 * (for secret hosts) and the operator's (egress.sandboxCaCerts; here the test CA).
 */

const has = (tool: string) => {
  try {
    execFileSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
};
const JAVA = has("javac");
const MAVEN = JAVA && has("mvn");
if (!JAVA) console.warn("java.integration: skipped: javac is not installed on this host (apt-get install default-jdk-headless; .ci/run installs it)");
else if (!MAVEN) console.warn("java.integration: Maven tests skipped: mvn is not installed on this host (apt-get install maven; .ci/run installs it)");

const KEY = "sk-java-secret-value-0123456789";
let up: Upstreams;
let dir: string;

beforeAll(async () => {
  up = await startUpstreams();
  dir = mkdtempSync(join(tmpdir(), "sbx-java-"));
  writeFileSync(join(dir, "test-ca.pem"), up.caPem);
});
// registered before the daemon's hooks, so it runs after the daemon stopped
afterAll(async () => {
  await up?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});
const { sb } = useSandbox({
  // The test CA plays an operator's internal CA: every sandbox trusts it, Java through its trust store.
  daemon: () => ({ config: { egress: { resolve: up.resolve, extraCaCerts: [join(dir, "test-ca.pem")], sandboxCaCerts: [join(dir, "test-ca.pem")] } } }),
  sandbox: {
    memory: "1GiB",
    allowNet: ["api.example.test", "other.example.test"],
    secrets: { REPO_TOKEN: { hosts: ["registry.example.test"], value: KEY } },
  },
});

const run = (script: string) => runBash(sb, script);

describe("links from /usr into /etc", () => {
  it("resolve inside as on the host, but for what is never bound (credentials, host identity)", async () => {
    const list = "find /usr -type l -lname '/etc/*' -printf '%p %l\\n' 2>/dev/null | LC_ALL=C sort";
    const onHost = execFileSync("bash", ["-c", `${list} | while read -r link target; do [ -e "$link" ] && echo "$link $target"; done`], { encoding: "utf8" });
    const inside = ok(await run(`${list} | while read -r link target; do [ -e "$link" ] && echo "$link $target"; done`), "find");
    const never = /^\/etc\/(shadow|gshadow|passwd|group|hosts|hostname|machine-id|ssh|sudoers|security|pam\.d|environment)(\/|$)/;
    const expected = onHost.split("\n").filter((l) => l && !never.test(l.split(" ")[1]!));
    expect(expected.length).toBeGreaterThan(0);
    expect(inside.split("\n").filter(Boolean)).toEqual(expected);
  });
});

describe("Java", () => {
  requires(!!JAVA, "no Debian JDK under /usr (.ci/run installs default-jdk-headless)");
  it("javac compiles and java runs it, reading java.security through the link into /etc", async () => {
    await sb.fs.writeTextFile(
      "Hello.java",
      'public class Hello { public static void main(String[] a) { System.out.println("hello " + java.security.Security.getProperty("securerandom.source") + " " + java.security.Security.getProviders().length); } }\n',
    );
    const out = ok(await run("javac Hello.java 2>&1 | grep -v '^Picked up' ; java Hello 2>/dev/null"), "javac + java");
    expect(out).toMatch(/^hello file:\/dev\/random \d+\n$/);
    // Single-file source launch compiles in memory (a different code path through the same files).
    expect(ok(await run("java Hello.java 2>/dev/null"), "java Hello.java")).toMatch(/^hello file:/);
  }, 60_000);

  it("JAVA_TOOL_OPTIONS names the proxy and the trust store, and a caller's own options follow ours", async () => {
    const base = ok(await run("printf %s \"$JAVA_TOOL_OPTIONS\""), "env");
    expect(base).toContain("-Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort=3128");
    expect(base).toContain("-Djavax.net.ssl.trustStore=/.sbx/java-cacerts.jks");
    const mine = await sb.sh`printf %s "$JAVA_TOOL_OPTIONS"`.env({ JAVA_TOOL_OPTIONS: "-Xmx64m" }).text();
    expect(mine).toBe(`${base} -Xmx64m`);
  });

  it("java.net.http reaches an allowed host over HTTP and HTTPS (trusting the operator's CA) through the proxy; others are refused", async () => {
    await sb.fs.writeTextFile(
      "Get.java",
      [
        "import java.net.URI; import java.net.http.*;",
        "public class Get { public static void main(String[] a) throws Exception {",
        "  var c = HttpClient.newHttpClient();",
        "  for (String u : a) {",
        "    var b = HttpRequest.newBuilder(URI.create(u));",
        "    // Only to the secret's host: a placeholder sent anywhere else is refused.",
        "    if (u.contains(\"registry.\")) b.header(\"Authorization\", \"Bearer \" + System.getenv(\"REPO_TOKEN\"));",
        "    try { var r = c.send(b.build(), HttpResponse.BodyHandlers.ofString());",
        "      System.out.println(r.statusCode() + \" \" + u); }",
        "    catch (Exception e) { System.out.println(\"error \" + u + \" \" + e.getClass().getSimpleName()); } } } }",
      ].join("\n"),
    );
    const out = ok(
      await run("java Get.java http://api.example.test/echo/java-http https://api.example.test/echo/java-https https://registry.example.test/echo/java-secret http://not-allowed.example.test/ 2>/dev/null"),
      "java Get.java",
    );
    expect(out.split("\n").filter(Boolean)).toEqual([
      "200 http://api.example.test/echo/java-http",
      "200 https://api.example.test/echo/java-https",
      "200 https://registry.example.test/echo/java-secret",
      "403 http://not-allowed.example.test/",
    ]);
    const seen = (path: string) => up.seen.find((s) => s.path === path);
    expect(seen("/echo/java-http")?.tls).toBe(false);
    expect(seen("/echo/java-https")?.tls).toBe(true);
    // The secret host is intercepted: Java trusted the daemon's CA, and the value replaced the placeholder on the way.
    expect(seen("/echo/java-secret")?.headers.authorization).toBe(`Bearer ${KEY}`);
  }, 60_000);
});

describe("Maven", () => {
  requires(!!MAVEN, "no Debian maven under /usr (.ci/run installs maven)");
  it("mvn runs (its m2.conf links into /etc/maven)", async () => {
    expect(ok(await run("mvn -B -v 2>/dev/null | head -1 | sed 's/\x1b\[[0-9;]*m//g'"), "mvn -v")).toMatch(/^Apache Maven 3\./);
  }, 60_000);

  it("resolves an artifact from a private HTTPS repository through the proxy, authenticated with the secret's placeholder", async () => {
    const pom = (extra: string) =>
      `<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion><groupId>com.example</groupId><artifactId>${extra}</artifactId><version>1.0</version><packaging>pom</packaging></project>\n`;
    up.canned.set("/maven/com/example/sbx-ext/1.0/sbx-ext-1.0.pom", { body: pom("sbx-ext").replace("<packaging>pom</packaging>", "") });
    up.canned.set("/maven/com/example/sbx-ext/1.0/sbx-ext-1.0.jar", { body: emptyJar() });
    // Maven adds this to every build extension's class path.
    up.canned.set("/maven/org/codehaus/plexus/plexus-utils/1.1/plexus-utils-1.1.pom", { body: pom("plexus-utils").replace("com.example", "org.codehaus.plexus").replace("<version>1.0</version>", "<version>1.1</version>").replace("<packaging>pom</packaging>", "") });
    up.canned.set("/maven/org/codehaus/plexus/plexus-utils/1.1/plexus-utils-1.1.jar", { body: emptyJar() });
    await sb.fs.mkdir("proj", { recursive: true });
    await sb.fs.writeTextFile(
      "proj/pom.xml",
      pom("app").replace(
        "</packaging>",
        "</packaging><pluginRepositories><pluginRepository><id>private</id><url>https://registry.example.test/maven</url></pluginRepository></pluginRepositories>" +
          "<build><extensions><extension><groupId>com.example</groupId><artifactId>sbx-ext</artifactId><version>1.0</version></extension></extensions></build>",
      ),
    );
    // As in a company: the private repository mirrors everything (central included). Maven's own
    // settings carry the credential: the sandbox writes the placeholder, the proxy sends the value.
    await sb.fs.writeTextFile(
      "proj/settings.xml",
      "<settings><mirrors><mirror><id>private</id><mirrorOf>*</mirrorOf><url>https://registry.example.test/maven</url></mirror></mirrors>" +
        "<servers><server><id>private</id><username>ci</username><password>${env.REPO_TOKEN}</password></server></servers></settings>\n",
    );
    const r = await run("cd proj && mvn -B -q -s settings.xml validate 2>&1 | grep -v '^Picked up'; echo \"exit ${PIPESTATUS[0]}\"");
    expect(r.out, r.err).toMatch(/exit 0\n$/);
    const jar = up.seen.find((s) => s.path === "/maven/com/example/sbx-ext/1.0/sbx-ext-1.0.jar");
    expect(jar?.tls).toBe(true);
    // Maven sends credentials after a 401 challenge or preemptively; whichever it did, only the value reached the upstream.
    const auths = up.seen.filter((s) => s.path.startsWith("/maven/")).map((s) => s.headers.authorization).filter(Boolean);
    for (const a of auths) expect(Buffer.from(String(a).replace(/^Basic /, ""), "base64").toString()).toBe(`ci:${KEY}`);
    expect(ok(await run("ls ~/.m2/repository/com/example/sbx-ext/1.0/"), "ls")).toContain("sbx-ext-1.0.jar");
  }, 120_000);
});

/** A jar with nothing but a manifest: enough for Maven to load an extension. */
function emptyJar(): Buffer {
  const work = mkdtempSync(join(tmpdir(), "sbx-jar-"));
  try {
    execFileSync("python3", ["-c", "import sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], 'w') as z: z.writestr('META-INF/MANIFEST.MF', 'Manifest-Version: 1.0\\n')", join(work, "e.jar")]);
    return execFileSync("cat", [join(work, "e.jar")]);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
