// Browser benchmarks (not part of `make test`): the same server set-up as the tests,
// but the release build by default, one worker, and figures printed, not asserted.
// `BENCH_SERVER=path/to/tether BENCH_SITE=path/to/site` runs another build (that is
// how "before" figures are measured).
import base from "./playwright.config";
import { defineConfig } from "@playwright/test";
import * as path from "node:path";

const repo = path.resolve(__dirname, "..");
const profile = process.env.E2E_PROFILE ?? "release";

export default defineConfig({
  ...base,
  testDir: "./bench",
  testMatch: /.*\.bench\.ts/,
  timeout: 300_000,
  workers: 1,
  fullyParallel: false,
  webServer: {
    ...(base.webServer as object),
    command: process.env.BENCH_SERVER ?? path.join(repo, "target", profile, "tether"),
    env: {
      ...((base.webServer as { env: Record<string, string> }).env),
      ...(process.env.BENCH_SITE ? { TETHER_SITE_ROOT: process.env.BENCH_SITE } : {}),
      TETHER_MAX_PUSHES_PER_SECOND: "100000",
    },
  } as never,
});
