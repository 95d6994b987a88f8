// Catch-up in the browser: a tab that was offline while 10,000 changes were made
// elsewhere comes back; how long until it shows them all, and how many bytes came
// over the live socket (loading a 10,000-item list from scratch is measured in
// biglist.bench.ts). Run with `make bench-browser`.
import { test, expect } from "@playwright/test";
import { randomUUID } from "node:crypto";
import { pushCreates } from "../tests/seed";

const CHANGES = Number(process.env.BENCH_CHANGES ?? 10_000);

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

  // Timed inside the page: from the browser's `online` event to the first moment
  // the counter shows every change and the badge says online.
  await page.evaluate((expected) => {
    const w = window as unknown as { backAt?: number; caughtUpAt?: number };
    window.addEventListener("online", () => (w.backAt = performance.now()), { once: true });
    const observer = new MutationObserver(() => {
      const count = document.querySelector(".todo-count strong")?.textContent;
      const state = document.querySelector(".status")?.getAttribute("data-state");
      if (w.backAt !== undefined && count === expected && state === "online") {
        w.caughtUpAt = performance.now();
        observer.disconnect();
      }
    });
    observer.observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
  }, String(CHANGES));
  await context.setOffline(false);
  const caughtUp = () => page.evaluate(() => (window as unknown as { caughtUpAt?: number }).caughtUpAt);
  await expect.poll(caughtUp, { timeout: 120_000 }).toBeDefined();
  const catchUp = Math.round(
    await page.evaluate(() => {
      const w = window as unknown as { backAt: number; caughtUpAt: number };
      return w.caughtUpAt - w.backAt;
    }),
  );

  const report = {
    view: view || "all",
    changes: CHANGES,
    catch_up_ms: catchUp,
    catch_up_bytes: bytes,
  };
  console.log(`BENCH catch-up (browser): ${JSON.stringify(report)}`);
});
}
