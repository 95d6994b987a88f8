// Playwright runs Tether end to end: the real server binary (built by
// `cargo leptos build`), a fresh SQLite database in a temporary directory, and
// Debian's Chromium. The server is started once for the whole run and stopped after.
import { defineConfig } from "@playwright/test";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

const port = Number(process.env.E2E_PORT ?? 3199);
export const baseURL = `http://127.0.0.1:${port}`;

// Workers load this file too; only the main process needs (and creates) the database.
const dataDir =
  process.env.E2E_DATA ??
  (process.env.TEST_WORKER_INDEX === undefined
    ? fs.mkdtempSync(path.join(os.tmpdir(), "tether-e2e-"))
    : "");
if (dataDir) process.env.E2E_DATA = dataDir;

const repo = path.resolve(__dirname, "..");

// Playwright passes its own environment on to the server, which refuses `TETHER_*`
// variables it does not know (`make test` sets TETHER_TEST_POSTGRES for the tests):
// those are unset (Node leaves out a variable whose value is undefined).
const inheritedTether = Object.fromEntries(
  Object.keys(process.env)
    .filter((name) => name.startsWith("TETHER_"))
    .map((name) => [name, undefined as unknown as string]),
);

export default defineConfig({
  testDir: "./tests",
  timeout: 30_000,
  // Waits end as soon as the page shows what is expected; 10 s only bounds a wait on
  // a 2-core machine whose other worker is busy (speed is measured by the benches,
  // and a test that claims "at once" gives its own shorter timeout).
  expect: { timeout: 10_000 },
  fullyParallel: true,
  workers: Number(process.env.E2E_WORKERS ?? 2),
  retries: 0,
  forbidOnly: !!process.env.CI,
  reporter: [["list"]],
  use: {
    baseURL,
    trace: "retain-on-failure",
    launchOptions: {
      executablePath: process.env.E2E_CHROMIUM ?? "/usr/bin/chromium",
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--no-first-run",
      ],
    },
  },
  webServer: {
    command: path.join(repo, "target", "debug", "tether"),
    cwd: repo,
    url: `${baseURL}/healthz`,
    timeout: 60_000,
    reuseExistingServer: false,
    stdout: "ignore",
    stderr: "pipe",
    env: {
      ...inheritedTether,
      TETHER_ADDR: `127.0.0.1:${port}`,
      TETHER_DATABASE_URL: `sqlite://${path.join(dataDir, "tether.db")}`,
      TETHER_SITE_ROOT: path.join(repo, "target", "site"),
      TETHER_LOG: "warn",
      TETHER_HEARTBEAT_SECS: "5",
    },
  },
});
