// Catch-up in the browser: a tab that was offline while 10,000 changes were made
// elsewhere comes back; how long until it shows them all, and how many bytes came
// over the live socket. Also: loading the same 10,000-item list from scratch
// (server render + hydration). Run with `make bench-browser`.
import { test, expect } from "@playwright/test";
import { randomUUID } from "node:crypto";

const CHANGES = Number(process.env.BENCH_CHANGES ?? 10_000);

/** A valid order key for the n-th item: integer part of three base-62 digits. */
function orderKey(n: number): string {
  const digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  return "c" + digits[Math.floor(n / 3844) % 62] + digits[Math.floor(n / 62) % 62] + digits[n % 62];
}

/** Pushes `count` todo creates to `list` over the documented protocol. */
async function pushCreates(baseURL: string, list: string, count: number) {
  const client = randomUUID();
  const ms = Date.now();
  for (let start = 0; start < count; start += 500) {
    const ops = [];
    for (let i = start; i < Math.min(count, start + 500); i++) {
      ops.push({
        client,
        seq: i + 1,
        stamp: `${ms}:${i}:${client}`,
        op: "create",
        node: randomUUID(),
        kind: "todo",
        parent: list,
        order: orderKey(i),
        fields: { title: `item ${i}`, completed: false },
      });
    }
    const res = await fetch(`${baseURL}/api/push`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ list, client, ops }),
    });
    expect(res.status, await res.clone().text()).toBe(200);
  }
}

for (const view of ["", "completed"]) {
test(`catch-up of ${CHANGES} changes in the browser${view ? ` (/${view}: none rendered)` : ""}`, async ({ page, context, baseURL }) => {
  const list = randomUUID();
  await page.goto(`/l/${list}${view ? `/${view}` : ""}`);
  await expect(page.locator(".status")).toHaveAttribute("data-state", "online", { timeout: 30_000 });

  let bytes = 0;
  page.on("websocket", (ws) => ws.on("framereceived", (f) => (bytes += f.payload.length)));

  await context.setOffline(true);
  await expect(page.locator(".status")).toHaveAttribute("data-state", "offline");
  await pushCreates(baseURL!, list, CHANGES);

  const t0 = Date.now();
  await context.setOffline(false);
  await expect(page.locator(".todo-count strong")).toHaveText(String(CHANGES), { timeout: 120_000 });
  await expect(page.locator(".status")).toHaveAttribute("data-state", "online", { timeout: 120_000 });
  const catchUp = Date.now() - t0;

  const t1 = Date.now();
  const fresh = await (await page.context().browser()!.newContext()).newPage();
  await fresh.goto(`/l/${list}`);
  await expect(fresh.locator(".todo-count strong")).toHaveText(String(CHANGES), { timeout: 120_000 });
  const firstPaint = Date.now() - t1;
  await expect(fresh.locator(".status")).toHaveAttribute("data-state", "online", { timeout: 120_000 });
  const interactive = Date.now() - t1;

  const report = {
    view: view || "all",
    changes: CHANGES,
    catch_up_ms: catchUp,
    catch_up_bytes: bytes,
    fresh_load_content_ms: firstPaint,
    fresh_load_live_ms: interactive,
  };
  console.log(`BENCH catch-up (browser): ${JSON.stringify(report)}`);
});
}
