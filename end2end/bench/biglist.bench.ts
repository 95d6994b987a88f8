// A 10,000-item list in the browser (issue 15's measures), each figure taken inside
// the page with performance.now() (no Playwright polling in it):
// - fresh load: first items painted (first contentful paint; the list's first rows
//   are in the server's HTML) and hydrated and live (the status badge says online);
// - keystroke: Enter in the new-item field → the new item in the DOM, scrolled to the
//   bottom of the list (where the new item goes), 30 times, p50/p95/max;
// - scrolling the whole list top to bottom a viewport per frame: the longest frame
//   and the long tasks (> 50 ms) seen;
// - the local copy's size in localStorage.
// Run with `make bench-browser`; figures are printed as `BENCH big list: {json}`.
import { test, expect, type Page } from "@playwright/test";
import { randomUUID } from "node:crypto";
import { pushCreates } from "../tests/seed";

const ITEMS = Number(process.env.BENCH_CHANGES ?? 10_000);

/** Records, from the first script the page runs, when the badge first says online. */
async function recordOnline(page: Page) {
  await page.addInitScript(() => {
    const w = window as unknown as { onlineAt?: number };
    new MutationObserver(() => {
      const badge = document.querySelector(".status");
      if (w.onlineAt === undefined && badge?.getAttribute("data-state") === "online") {
        w.onlineAt = performance.now();
      }
    }).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-state"] });
  });
}

async function seeded(baseURL: string): Promise<string> {
  const list = randomUUID();
  await pushCreates(baseURL, list, ITEMS);
  return list;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const round = (ms: number) => Math.round(ms * 10) / 10;

test(`a ${ITEMS}-item list: fresh load, keystroke, scrolling, local copy`, async ({ page, baseURL }) => {
  const list = await seeded(baseURL!);
  await recordOnline(page);
  await page.goto(`/l/${list}`);
  await expect(page.locator(".status")).toHaveAttribute("data-state", "online", { timeout: 120_000 });
  await expect(page.locator(".todo-count strong")).toHaveText(String(ITEMS));
  const load = await page.evaluate(() => ({
    firstPaint: performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? -1,
    online: (window as unknown as { onlineAt: number }).onlineAt,
    domRows: document.querySelectorAll(".todo-list li").length,
  }));

  // The local copy, once saved.
  const key = `tether:state:${list}`;
  await expect.poll(() => page.evaluate((k) => localStorage.getItem(k)?.length ?? 0, key), { timeout: 30_000 }).toBeGreaterThan(0);
  await page.waitForTimeout(2_000);
  const copyBytes = await page.evaluate((k) => new TextEncoder().encode(localStorage.getItem(k)!).length, key);

  const scroll = await page.evaluate(async () => {
    const frame = () => new Promise<number>((r) => requestAnimationFrame(r));
    const long: number[] = [];
    const observer = new PerformanceObserver((l) => l.getEntries().forEach((e) => long.push(e.duration)));
    observer.observe({ type: "longtask" });
    window.scrollTo(0, 0);
    await frame();
    const frames: number[] = [];
    let last = await frame();
    for (;;) {
      const before = window.scrollY;
      window.scrollBy(0, window.innerHeight);
      const now = await frame();
      frames.push(now - last);
      last = now;
      if (window.scrollY === before) break;
    }
    await frame();
    observer.disconnect();
    frames.sort((a, b) => a - b);
    return { frames: frames.length, max: frames[frames.length - 1], p99: frames[Math.floor(frames.length * 0.99)], over50: frames.filter((f) => f > 50).length, longTasks: long.length, longestTask: Math.max(0, ...long) };
  });

  // Scrolled to the bottom, where new items go: Enter → the new item in the DOM.
  const keys = await page.evaluate(async (n) => {
    const frame = () => new Promise((r) => requestAnimationFrame(r));
    const input = document.querySelector(".new-todo") as HTMLInputElement;
    const list = document.querySelector(".todo-list")!;
    const times: number[] = [];
    for (let i = 0; i < n; i++) {
      window.scrollTo(0, document.documentElement.scrollHeight);
      await frame();
      await frame();
      const title = `typed ${i}`;
      const shown = new Promise<number>((resolve) => {
        const observer = new MutationObserver(() => {
          for (const label of list.querySelectorAll("li.todo label")) {
            if (label.textContent === title) {
              observer.disconnect();
              resolve(performance.now());
              return;
            }
          }
        });
        observer.observe(list, { childList: true, subtree: true, characterData: true });
      });
      input.value = title;
      input.dispatchEvent(new Event("input", { bubbles: true }));
      const t0 = performance.now();
      input.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
      times.push((await shown) - t0);
      await new Promise((r) => setTimeout(r, 50));
    }
    return times.sort((a, b) => a - b);
  }, 30);

  const report = {
    items: ITEMS,
    fresh_first_paint_ms: round(load.firstPaint),
    fresh_live_ms: round(load.online),
    dom_rows_after_load: load.domRows,
    keystroke_to_dom_ms: { p50: round(percentile(keys, 50)), p95: round(percentile(keys, 95)), max: round(keys[keys.length - 1]) },
    scroll: { frames: scroll.frames, max_frame_ms: round(scroll.max), p99_frame_ms: round(scroll.p99), frames_over_50_ms: scroll.over50, long_tasks: scroll.longTasks, longest_task_ms: round(scroll.longestTask) },
    local_copy_bytes: copyBytes,
  };
  console.log(`BENCH big list: ${JSON.stringify(report)}`);
});
