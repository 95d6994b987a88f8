// A CPU profile of the browser catch-up (no rendering), for finding hot spots:
// BENCH_PROFILE=1 npx playwright test -c playwright.bench.config.ts profile
import { test, expect } from "@playwright/test";
import { randomUUID } from "node:crypto";
import * as fs from "node:fs";

test.skip(!process.env.BENCH_PROFILE, "set BENCH_PROFILE=1 to profile");

function orderKey(n: number): string {
  const d = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  return "c" + d[Math.floor(n / 3844) % 62] + d[Math.floor(n / 62) % 62] + d[n % 62];
}

test("profile catch-up", async ({ page, context, baseURL }) => {
  const list = randomUUID();
  await page.goto(`/l/${list}/completed`);
  await expect(page.locator(".status")).toHaveAttribute("data-state", "online", { timeout: 30_000 });
  await context.setOffline(true);
  const client = randomUUID();
  const ms = Date.now();
  for (let start = 0; start < 10000; start += 500) {
    const ops = [];
    for (let i = start; i < start + 500; i++)
      ops.push({ client, seq: i + 1, stamp: `${ms}:${i}:${client}`, op: "create", node: randomUUID(), kind: "todo", parent: list, order: orderKey(i), fields: { title: `item ${i}`, completed: false } });
    await fetch(`${baseURL}/api/push`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ list, client, ops }) });
  }
  const cdp = await context.newCDPSession(page);
  await cdp.send("Profiler.enable");
  await cdp.send("Profiler.setSamplingInterval", { interval: 200 });
  await cdp.send("Profiler.start");
  await context.setOffline(false);
  await expect(page.locator(".todo-count strong")).toHaveText("10000", { timeout: 60_000 });
  await expect(page.locator(".status")).toHaveAttribute("data-state", "online");
  await page.waitForTimeout(500);
  const { profile } = await cdp.send("Profiler.stop");
  fs.writeFileSync("/tmp/prof/catchup.cpuprofile", JSON.stringify(profile));
});
