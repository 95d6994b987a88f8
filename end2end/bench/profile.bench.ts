// CPU profiles of the browser with a 10,000-item list, for finding hot spots:
// BENCH_PROFILE=1 npx playwright test -c playwright.bench.config.ts profile
// writes target/bench/{catchup,load,typing,scroll}.cpuprofile (open in Chrome's DevTools).
// Function names need the debug front end (`cargo leptos build --frontend-only`;
// the release wasm has no name section); the costs are then a debug build's.
import { test, expect, type Page, type BrowserContext } from "@playwright/test";
import { randomUUID } from "node:crypto";
import * as fs from "node:fs";
import { pushCreates } from "../tests/seed";

test.skip(!process.env.BENCH_PROFILE, "set BENCH_PROFILE=1 to profile");

/** Profiles what `run` makes the page do into target/bench/<name>.cpuprofile. */
async function profiled(context: BrowserContext, page: Page, name: string, run: () => Promise<void>) {
  const cdp = await context.newCDPSession(page);
  await cdp.send("Profiler.enable");
  await cdp.send("Profiler.setSamplingInterval", { interval: 200 });
  await cdp.send("Profiler.start");
  await run();
  const { profile } = await cdp.send("Profiler.stop");
  fs.mkdirSync("../target/bench", { recursive: true });
  fs.writeFileSync(`../target/bench/${name}.cpuprofile`, JSON.stringify(profile));
}

const online = (page: Page) =>
  expect(page.locator(".status")).toHaveAttribute("data-state", "online", { timeout: 60_000 });

/** Seeds a list of 10,000 todos over the protocol and opens it, live. */
async function openBigList(page: Page, baseURL: string) {
  const list = randomUUID();
  await pushCreates(baseURL, list, 10_000);
  await page.goto(`/l/${list}`);
  await online(page);
}

test("profile catch-up (nothing rendered)", async ({ page, context, baseURL }) => {
  const list = randomUUID();
  await page.goto(`/l/${list}/completed`);
  await online(page);
  await context.setOffline(true);
  await pushCreates(baseURL!, list, 10_000);
  await profiled(context, page, "catchup", async () => {
    await context.setOffline(false);
    await expect(page.locator(".todo-count strong")).toHaveText("10000", { timeout: 60_000 });
    await online(page);
    await page.waitForTimeout(500);
  });
});

test("profile a fresh load", async ({ page, context, baseURL }) => {
  const list = randomUUID();
  await pushCreates(baseURL!, list, 10_000);
  await page.goto("/");
  await profiled(context, page, "load", async () => {
    await page.goto(`/l/${list}`);
    await online(page);
    await page.waitForTimeout(300);
  });
});

test("profile typing at the bottom of the list", async ({ page, context, baseURL }) => {
  await openBigList(page, baseURL!);
  await profiled(context, page, "typing", async () => {
    await page.evaluate(async () => {
      const frame = () => new Promise((r) => requestAnimationFrame(r));
      window.scrollTo(0, document.documentElement.scrollHeight);
      await frame();
      const input = document.querySelector(".new-todo") as HTMLInputElement;
      for (let i = 0; i < 10; i++) {
        input.value = `typed ${i}`;
        input.dispatchEvent(new Event("input", { bubbles: true }));
        input.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
        await frame();
      }
    });
  });
});

test("profile scrolling the whole list a viewport per frame", async ({ page, context, baseURL }) => {
  await openBigList(page, baseURL!);
  await profiled(context, page, "scroll", async () => {
    await page.evaluate(async () => {
      const frame = () => new Promise((r) => requestAnimationFrame(r));
      window.scrollTo(0, 0);
      await frame();
      for (;;) {
        const before = window.scrollY;
        window.scrollBy(0, window.innerHeight);
        await frame();
        if (window.scrollY === before) break;
      }
    });
  });
});
