// A 10,000-item list (seeded from outside over the protocol) in the browser: only
// the rows near the viewport are in the DOM, yet every item is reachable by
// scrolling, counted, filtered, toggled, edited and deleted as in a short list, and
// what is done far down the list reaches the server.
import type { Locator } from "@playwright/test";
import { test, expect, hydrated, settled, freshListId, type Page } from "./fixtures";
import { pushCreates, pullAll } from "./seed";

const ITEMS = 10_000;

test.describe.configure({ timeout: 240_000 });

/** Opens a fresh list of ITEMS todos ("item 0" … "item 9999") and waits until live. */
async function openBigList(page: Page, baseURL: string, filter = ""): Promise<string> {
  const list = freshListId();
  await pushCreates(baseURL, list, ITEMS);
  await page.goto(`/l/${list}${filter ? `/${filter}` : ""}`);
  await hydrated(page);
  await expect(page.locator(".status")).toHaveAttribute("data-state", "online", { timeout: 60_000 });
  return list;
}

/**
 * Clicks `target` in the footer under the list as a person does: scrolled to first,
 * and once the page has stopped moving. (Scrolling there renders the rows near the
 * end; Playwright's own scroll-then-click checks that the target is still before it
 * scrolls, and a debug build busy rendering took 200 ms before the click went out,
 * which then missed the link.)
 */
async function clickBelowList(target: Locator) {
  await target.scrollIntoViewIfNeeded();
  const still = () =>
    target.evaluate(async (el) => {
      const frame = () => new Promise((r) => requestAnimationFrame(r));
      const top = el.getBoundingClientRect().top;
      await frame();
      await frame();
      return el.getBoundingClientRect().top === top;
    });
  await expect.poll(still).toBe(true);
  await target.click();
}

/** Scrolls the page until the item titled `title` is in the DOM; returns its row. */
async function scrollTo(page: Page, title: string) {
  const row = page.locator(".todo-list li.todo", { has: page.locator(`label:text-is("${title}")`) });
  const index = Number(title.split(" ")[1]);
  await page.evaluate((i) => {
    // Where the scroll bar puts the i-th of the list's rows.
    const list = document.querySelector(".todo-list") as HTMLElement;
    const top = list.getBoundingClientRect().top + window.scrollY;
    window.scrollTo(0, top + (i / 10_000) * list.offsetHeight - 200);
  }, index);
  await expect(row).toHaveCount(1);
  await row.scrollIntoViewIfNeeded();
  return row;
}

test("a 10,000-item list keeps only the rows near the screen and every item is reachable by scrolling", async ({ page, baseURL }) => {
  await openBigList(page, baseURL!);
  await expect(page.locator(".todo-count strong")).toHaveText(String(ITEMS));
  const rendered = await page.locator(".todo-list li").count();
  expect(rendered).toBeGreaterThan(5);
  expect(rendered).toBeLessThan(200);

  // Scroll from top to bottom in steps smaller than what is rendered around the
  // viewport, collecting every title that was in the DOM, in order.
  const seen = await page.evaluate(async () => {
    const frame = () => new Promise((r) => requestAnimationFrame(r));
    const titles = new Map<number, string>();
    for (;;) {
      for (const label of document.querySelectorAll(".todo-list li.todo label")) {
        const n = Number(label.textContent!.split(" ")[1]);
        titles.set(n, label.textContent!);
      }
      const before = window.scrollY;
      window.scrollBy(0, window.innerHeight * 2);
      await frame();
      await frame();
      if (window.scrollY === before) break;
    }
    for (const label of document.querySelectorAll(".todo-list li.todo label")) {
      titles.set(Number(label.textContent!.split(" ")[1]), label.textContent!);
    }
    return { count: titles.size, last: document.querySelector(".todo-list li.todo:last-child label")?.textContent };
  });
  expect(seen.count).toBe(ITEMS);
  expect(seen.last).toBe(`item ${ITEMS - 1}`);
  await expect(page.locator(".todo-list li").count()).resolves.toBeLessThan(200);
  await expect(page.locator(".todo-count strong")).toHaveText(String(ITEMS));
});

test("toggling, editing and deleting items far down a 10,000-item list works and syncs", async ({ page, baseURL }) => {
  const list = await openBigList(page, baseURL!);

  const toggled = await scrollTo(page, "item 9000");
  await toggled.locator(".toggle").check();
  await expect(page.locator(".todo-count strong")).toHaveText(String(ITEMS - 1));

  const edited = await scrollTo(page, "item 9001");
  await edited.locator("label").dblclick();
  await edited.locator("input.edit").fill("renamed far down");
  await edited.locator("input.edit").press("Enter");
  await expect(page.locator(".todo-list li.todo label", { hasText: "renamed far down" })).toHaveCount(1);

  const deleted = await scrollTo(page, "item 9002");
  await deleted.hover();
  await deleted.locator(".destroy").click();
  await expect(page.locator('.todo-list li.todo label:text-is("item 9002")')).toHaveCount(0);
  await expect(page.locator(".todo-count strong")).toHaveText(String(ITEMS - 2));
  await settled(page);

  const nodes = [...(await pullAll(baseURL!, list)).values()];
  const titled = (t: string) => nodes.filter((n) => n.fields.title?.v === t);
  expect(titled("item 9000")[0].fields.completed.v).toBe(true);
  expect(titled("renamed far down")).toHaveLength(1);
  expect(titled("item 9001")).toHaveLength(0);
  expect(titled("item 9002")[0].deleted).not.toBeNull();
  expect(titled("item 9003")[0].deleted).toBeNull();
});

test("filters, toggle-all and clear completed on a 10,000-item list give the right counts", async ({ page, baseURL }) => {
  const list = await openBigList(page, baseURL!);
  for (const n of [0, 1, 2]) {
    await page.locator(".todo-list li.todo").nth(n).locator(".toggle").check();
  }
  await expect(page.locator(".todo-count strong")).toHaveText(String(ITEMS - 3));

  await clickBelowList(page.locator(".filters a", { hasText: "Completed" }));
  await expect(page.locator(".todo-list li.todo label")).toHaveText(["item 0", "item 1", "item 2"]);
  await clickBelowList(page.locator(".filters a", { hasText: "Active" }));
  await expect(page.locator(".todo-list li.todo label").first()).toHaveText("item 3");
  await expect(page.locator(".todo-count strong")).toHaveText(String(ITEMS - 3));

  await clickBelowList(page.locator(".filters a", { hasText: "All" }));
  await clickBelowList(page.locator(".clear-completed"));
  await expect(page.locator(".todo-count strong")).toHaveText(String(ITEMS - 3));
  await page.evaluate(() => window.scrollTo(0, 0));
  await expect(page.locator(".todo-list li.todo label").first()).toHaveText("item 3");
  await expect(page.locator(".clear-completed")).toBeHidden();

  // Toggle-all marks all 9,997 done in one action, and again marks them not done.
  await page.locator("label[for=toggle-all]").click();
  await expect(page.locator(".todo-count strong")).toHaveText("0");
  await clickBelowList(page.locator(".filters a", { hasText: "Active" }));
  await expect(page.locator(".todo-list li.todo")).toHaveCount(0);
  await clickBelowList(page.locator(".filters a", { hasText: "All" }));
  await page.locator("label[for=toggle-all]").click();
  await expect(page.locator(".todo-count strong")).toHaveText(String(ITEMS - 3));
  // Twice 9,997 writes to push (a debug build takes its time).
  await expect(page.locator(".status .pending")).toHaveAttribute("data-count", "0", { timeout: 120_000 });
  await settled(page);

  const nodes = [...(await pullAll(baseURL!, list)).values()].filter((n) => n.fields.title);
  expect(nodes.filter((n) => n.deleted)).toHaveLength(3);
  expect(nodes.filter((n) => !n.deleted && n.fields.completed.v === false)).toHaveLength(ITEMS - 3);
});
