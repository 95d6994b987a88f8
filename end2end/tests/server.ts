// A Tether server of a test's own, for settings the suite's server does not have (a
// small request limit, …): the same binary, a fresh database, a free port.
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";

const repo = path.resolve(__dirname, "..", "..");

export type OwnServer = { url: string; stop: () => Promise<void> };

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.on("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** Starts a server with `settings` (`TETHER_*` variables) and waits until it is healthy. */
export async function startServer(settings: Record<string, string>): Promise<OwnServer> {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tether-e2e-own-"));
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(path.join(repo, "target", "debug", "tether"), [], {
    cwd: repo,
    stdio: ["ignore", "ignore", "inherit"],
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "",
      TETHER_ADDR: `127.0.0.1:${port}`,
      TETHER_DATABASE_URL: `sqlite://${path.join(dir, "tether.db")}`,
      TETHER_SITE_ROOT: path.join(repo, "target", "site"),
      TETHER_LOG: "error",
      TETHER_HEARTBEAT_SECS: "5",
      ...settings,
    },
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async () => {
    child.kill("SIGTERM");
    await exited;
    fs.rmSync(dir, { recursive: true, force: true });
  };
  for (let waited = 0; waited < 30_000; waited += 100) {
    if (child.exitCode !== null) break;
    const healthy = await fetch(`${url}/healthz`).then((r) => r.ok).catch(() => false);
    if (healthy) return { url, stop };
    await new Promise((r) => setTimeout(r, 100));
  }
  await stop();
  throw new Error(`the server with ${JSON.stringify(settings)} did not start`);
}
