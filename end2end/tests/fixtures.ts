// Shared fixtures: every page fails its test on a console error or an uncaught page
// error (hydration mismatches and CSP violations show up there), and helpers to open
// a fresh list and wait until the app is hydrated.
import { test as base, expect, type Page, type BrowserContext } from "@playwright/test";
import { randomUUID } from "node:crypto";

/** Errors seen on a page; checked after each test. */
export function watchErrors(page: Page, errors: string[], allow: RegExp | null = null) {
  page.on("console", (msg) => {
    if (msg.type() !== "error") return;
    const text = msg.text();
    if (allow?.test(text)) return;
    errors.push(`console.error: ${text}`);
  });
  page.on("pageerror", (err) => errors.push(`page error: ${err.message}`));
}

type Fixtures = {
  /** Console messages a test expects (e.g. failed requests while offline): one
   *  pattern (an array here would be read as Playwright's [value, options]). */
  allowErrors: RegExp | null;
  errors: string[];
};

export const test = base.extend<Fixtures>({
  allowErrors: [null, { option: true }],
  // Automatic: every test fails on an unexpected console or page error.
  errors: [
    async ({ page, context, allowErrors }, use) => {
      const errors: string[] = [];
      watchErrors(page, errors, allowErrors);
      context.on("page", (p) => {
        if (p !== page) watchErrors(p, errors, allowErrors);
      });
      await use(errors);
      expect(errors, "no console or page errors").toEqual([]);
    },
    { auto: true },
  ],
});

export { expect };

/** A list UID nobody has used yet. */
export function freshListId(): string {
  return randomUUID();
}

/** Waits until the page is hydrated (the status badge has left "connecting"). */
export async function hydrated(page: Page) {
  await expect(page.locator(".status")).not.toHaveAttribute("data-state", "connecting", {
    timeout: 15_000,
  });
}

/** Opens a fresh list (or `id`) and waits for it to be live. */
export async function openList(page: Page, id = freshListId(), filter = ""): Promise<string> {
  await page.goto(`/l/${id}${filter ? `/${filter}` : ""}`);
  await hydrated(page);
  await expect(page.locator(".status")).toHaveAttribute("data-state", "online");
  return id;
}

/** Adds todos through the UI. */
export async function addTodos(page: Page, ...titles: string[]) {
  const input = page.locator(".new-todo");
  for (const title of titles) {
    await input.fill(title);
    await input.press("Enter");
  }
}

/** The todo titles shown, in order. */
export function titles(page: Page) {
  return page.locator(".todo-list li.todo label");
}

/** Waits until nothing is pending and the badge says online. */
export async function settled(page: Page) {
  await expect(page.locator(".status .pending")).toHaveAttribute("data-count", "0", {
    timeout: 10_000,
  });
  await expect(page.locator(".status")).toHaveAttribute("data-state", "online", {
    timeout: 10_000,
  });
}

/** Starts recording every state the status badge shows (brief ones included). */
export async function recordStates(page: Page) {
  await page.evaluate(() => {
    const w = window as unknown as { statesSeen: string[] };
    w.statesSeen = [];
    const badge = document.querySelector(".status")!;
    new MutationObserver(() => w.statesSeen.push(badge.getAttribute("data-state") ?? "")).observe(badge, {
      attributes: true,
      attributeFilter: ["data-state"],
    });
  });
}

/** The states recorded since `recordStates`. */
export function statesSeen(page: Page): Promise<string[]> {
  return page.evaluate(() => (window as unknown as { statesSeen: string[] }).statesSeen);
}

export type { Page, BrowserContext };
