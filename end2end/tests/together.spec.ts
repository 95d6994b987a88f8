// Working together, two browser contexts on one list: undo and redo of this tab's
// own changes (Ctrl+Z, Ctrl+Shift+Z, Ctrl+Y, the buttons), the "your change was
// replaced" notice with Restore, and reordering (Alt+Up/Down, drag), each checked on
// the other context and in the server's HTML (JavaScript off).
import {
  test,
  expect,
  openList,
  addTodos,
  settled,
  hydrated,
  type Page,
  type BrowserContext,
} from "./fixtures";
import type { Browser } from "@playwright/test";

test.use({ allowErrors: /ERR_INTERNET_DISCONNECTED|WebSocket connection to .* failed|Failed to fetch|net::ERR_/ });

const todo = (page: Page, title: string) =>
  page.locator(".todo-list li.todo", { has: page.locator("label", { hasText: new RegExp(`^${title}$`) }) });

const item = (page: Page, title: string) =>
  page.locator(".todo-list li", { has: page.locator("label, h2", { hasText: new RegExp(`^${title}$`) }) });

type Shown = { title: string; done: boolean };

/** Every item (todos and headings) as shown, in order; a heading is "# title". */
async function shown(page: Page): Promise<Shown[]> {
  return page.locator(".todo-list li").evaluateAll((lis) =>
    lis.map((li) => {
      const heading = li.querySelector("h2");
      return {
        title: heading ? `# ${heading.textContent ?? ""}` : (li.querySelector("label")?.textContent ?? ""),
        done: li.classList.contains("completed"),
      };
    }),
  );
}

/** The list in the server's HTML, rendered with JavaScript off. */
async function onServer(browser: Browser, id: string): Promise<Shown[]> {
  const ctx = await browser.newContext({ javaScriptEnabled: false });
  const page = await ctx.newPage();
  await page.goto(`/l/${id}`);
  const items = await shown(page);
  await ctx.close();
  return items;
}

/** Waits until both contexts and the server show `want`. */
async function everywhere(a: Page, b: Page, browser: Browser, id: string, want: Shown[]) {
  await expect.poll(() => shown(a)).toEqual(want);
  await expect.poll(() => shown(b)).toEqual(want);
  await settled(a);
  await expect.poll(() => onServer(browser, id)).toEqual(want);
}

const t = (title: string, done = false): Shown => ({ title, done });

/** Focus out of any text field (the keys are for the list, not the field). */
async function leaveField(page: Page) {
  await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
}

async function undo(page: Page) {
  await leaveField(page);
  await page.keyboard.press("Control+z");
}

async function redo(page: Page, key = "Control+Shift+z") {
  await leaveField(page);
  await page.keyboard.press(key);
}

async function rename(page: Page, from: string, to: string) {
  await todo(page, from).locator("label").dblclick();
  await todo(page, from).locator(".edit").fill(to);
  await todo(page, from).locator(".edit").press("Enter");
}

async function twoOnOneList(page: Page, browser: Browser): Promise<{ id: string; b: Page; other: BrowserContext }> {
  const id = await openList(page);
  const other = await browser.newContext();
  const b = await other.newPage();
  await openList(b, id);
  return { id, b, other };
}

test("Ctrl+Z undoes an add, an edit and a toggle, Ctrl+Shift+Z and Ctrl+Y redo them, everywhere", async ({
  page: a,
  browser,
}) => {
  test.slow();
  const { id, b, other } = await twoOnOneList(a, browser);
  await expect(a.locator(".undo")).toBeDisabled();

  await addTodos(a, "milk");
  await everywhere(a, b, browser, id, [t("milk")]);
  // In the text field, Ctrl+Z is the field's own: the list is left alone.
  await a.keyboard.press("Control+z");
  await expect(a.locator(".todo-list li")).toHaveCount(1);
  await undo(a);
  await everywhere(a, b, browser, id, []);
  await redo(a);
  await everywhere(a, b, browser, id, [t("milk")]);

  await rename(a, "milk", "oat milk");
  await everywhere(a, b, browser, id, [t("oat milk")]);
  await undo(a);
  await everywhere(a, b, browser, id, [t("milk")]);
  await redo(a, "Control+y");
  await everywhere(a, b, browser, id, [t("oat milk")]);

  await todo(a, "oat milk").locator(".toggle").check();
  await everywhere(a, b, browser, id, [t("oat milk", true)]);
  await undo(a);
  await everywhere(a, b, browser, id, [t("oat milk")]);
  // The buttons do the same.
  await a.locator(".redo").click();
  await everywhere(a, b, browser, id, [t("oat milk", true)]);
  await a.locator(".undo").click();
  await everywhere(a, b, browser, id, [t("oat milk")]);
  await other.close();
});

test("Ctrl+Z brings back a deleted item and a whole clear completed; Ctrl+Shift+Z deletes again", async ({
  page: a,
  browser,
}) => {
  test.slow();
  const { id, b, other } = await twoOnOneList(a, browser);
  await addTodos(a, "a", "b", "c");
  await todo(a, "b").locator(".toggle").check();
  await todo(a, "b").hover();
  await todo(a, "b").locator(".destroy").click();
  await everywhere(a, b, browser, id, [t("a"), t("c")]);
  await undo(a);
  await everywhere(a, b, browser, id, [t("a"), t("b", true), t("c")]);
  await redo(a);
  await everywhere(a, b, browser, id, [t("a"), t("c")]);
  await undo(a);
  await everywhere(a, b, browser, id, [t("a"), t("b", true), t("c")]);

  await todo(a, "c").locator(".toggle").check();
  await a.locator(".clear-completed").click();
  await everywhere(a, b, browser, id, [t("a")]);
  await undo(a); // the whole clear at once
  await everywhere(a, b, browser, id, [t("a"), t("b", true), t("c", true)]);
  await redo(a);
  await everywhere(a, b, browser, id, [t("a")]);
  await other.close();
});

test("Ctrl+Z undoes a move and toggle all; Ctrl+Shift+Z redoes them", async ({ page: a, browser }) => {
  test.slow();
  const { id, b, other } = await twoOnOneList(a, browser);
  await addTodos(a, "x", "y");
  await todo(a, "y").focus();
  await a.keyboard.press("Alt+ArrowUp");
  await everywhere(a, b, browser, id, [t("y"), t("x")]);
  await undo(a);
  await everywhere(a, b, browser, id, [t("x"), t("y")]);
  await redo(a);
  await everywhere(a, b, browser, id, [t("y"), t("x")]);

  await a.locator('label[for="toggle-all"]').click();
  await everywhere(a, b, browser, id, [t("y", true), t("x", true)]);
  await undo(a);
  await everywhere(a, b, browser, id, [t("y"), t("x")]);
  await other.close();
});

test("undo after the other person's later edit of the same field leaves their edit and says so", async ({
  page: a,
  browser,
}) => {
  const { id, b, other } = await twoOnOneList(a, browser);
  await addTodos(a, "milk");
  await rename(a, "milk", "oat milk");
  await expect(todo(b, "oat milk")).toBeVisible();
  await rename(b, "oat milk", "goat milk");
  await expect(todo(a, "goat milk")).toBeVisible();
  // B had seen A's title: no notice, it merely follows.
  await expect(a.locator(".replaced")).toHaveCount(0);

  await undo(a);
  await expect(a.locator(".undo-note")).toContainText("someone else changed the title");
  await everywhere(a, b, browser, id, [t("goat milk")]);
  await other.close();
});

test("two people edit one title at once: the loser sees the notice, Restore brings theirs back everywhere", async ({
  page: a,
  browser,
}) => {
  test.slow();
  const { id, b, other } = await twoOnOneList(a, browser);
  await addTodos(a, "milk");
  await expect(todo(b, "milk")).toBeVisible();
  await settled(b);

  // B is offline, so neither sees the other's edit before making its own.
  await other.setOffline(true);
  await expect(b.locator(".status")).toHaveAttribute("data-state", "offline");
  await rename(a, "milk", "Buy oat milk");
  await settled(a);
  await rename(b, "milk", "Buy milk"); // later: it wins
  await other.setOffline(false);
  await settled(b);

  await expect(todo(a, "Buy milk")).toBeVisible();
  const notice = todo(a, "Buy milk").locator(".replaced");
  // The notice names B as B's presence shows it ("You: Guest 1234" on B's page).
  const bName = ((await b.locator(".presence .rename").textContent()) ?? "").replace(/^You: /, "");
  expect(bName).toMatch(/^Guest \d{4}$/);
  await expect(notice).toContainText(`Your title \u2018Buy oat milk\u2019 was replaced by ${bName}\u2019s \u2018Buy milk\u2019`);
  await expect(b.locator(".replaced")).toHaveCount(0);

  await notice.locator(".restore").click();
  await expect(a.locator(".replaced")).toHaveCount(0);
  await everywhere(a, b, browser, id, [t("Buy oat milk")]);
  // Restore followed B's value: B is told nothing.
  await expect(b.locator(".replaced")).toHaveCount(0);
  await other.close();
});

test("Alt+Up/Down and drag reorder todos and headings, the same for both and after reload", async ({
  page: a,
  browser,
}) => {
  test.slow();
  const { id, b, other } = await twoOnOneList(a, browser);
  await addTodos(a, "a", "b", "c");
  await a.locator(".new-todo").fill("Dairy");
  await a.locator(".add-section").click();

  await todo(a, "c").focus();
  await a.keyboard.press("Alt+ArrowUp");
  await a.keyboard.press("Alt+ArrowUp"); // at once: the item keeps the focus
  await expect.poll(() => shown(a)).toEqual([t("c"), t("a"), t("b"), t("# Dairy")]);
  await expect(todo(a, "c")).toBeFocused();
  await a.keyboard.press("Alt+ArrowDown");
  await expect.poll(() => shown(a)).toEqual([t("a"), t("c"), t("b"), t("# Dairy")]);
  await item(a, "Dairy").focus();
  for (const want of [
    [t("a"), t("c"), t("# Dairy"), t("b")],
    [t("a"), t("# Dairy"), t("c"), t("b")],
    [t("# Dairy"), t("a"), t("c"), t("b")],
  ]) {
    await a.keyboard.press("Alt+ArrowUp");
    await expect.poll(() => shown(a)).toEqual(want);
  }
  await everywhere(a, b, browser, id, [t("# Dairy"), t("a"), t("c"), t("b")]);

  // Drag by the handle: down puts it after the target, up before.
  await todo(b, "b").locator(".handle").dragTo(todo(b, "a"));
  await expect.poll(() => shown(b)).toEqual([t("# Dairy"), t("b"), t("a"), t("c")]);
  await item(b, "Dairy").locator(".handle").dragTo(todo(b, "c"));
  await everywhere(b, a, browser, id, [t("b"), t("a"), t("c"), t("# Dairy")]);

  await a.reload();
  await hydrated(a);
  await expect.poll(() => shown(a)).toEqual([t("b"), t("a"), t("c"), t("# Dairy")]);
  await other.close();
});

test("two concurrent moves converge to one order everywhere", async ({ page: a, browser }) => {
  test.slow();
  const { id, b, other } = await twoOnOneList(a, browser);
  await addTodos(a, "a", "b", "c", "d");
  await expect.poll(() => shown(b)).toEqual([t("a"), t("b"), t("c"), t("d")]);
  await settled(b);

  await other.setOffline(true);
  await expect(b.locator(".status")).toHaveAttribute("data-state", "offline");
  // A moves a to the end; B, offline, moves d to the top and b below c.
  await todo(a, "a").focus();
  for (let i = 0; i < 3; i++) await a.keyboard.press("Alt+ArrowDown");
  await expect.poll(() => shown(a)).toEqual([t("b"), t("c"), t("d"), t("a")]);
  await settled(a);
  await todo(b, "d").locator(".handle").dragTo(todo(b, "a"));
  await todo(b, "b").focus();
  await b.keyboard.press("Alt+ArrowDown");
  await expect.poll(() => shown(b)).toEqual([t("d"), t("a"), t("c"), t("b")]);
  await other.setOffline(false);
  await settled(b);
  await settled(a);

  const server = await onServer(browser, id);
  await expect.poll(() => shown(a)).toEqual(server);
  await expect.poll(() => shown(b)).toEqual(server);
  // Every move stands: d first (B), b after c (B), a last (A).
  expect(server).toEqual([t("d"), t("c"), t("b"), t("a")]);
  await other.close();
});
