// The home page ("your lists", new list, open by link), list titles, the section
// kind that proves the registry, and the inspector's view tree against the DOM.
import { test, expect, openList, addTodos, titles, settled, hydrated, freshListId } from "./fixtures";

test("a new list gets a fresh UID and starts empty", async ({ page }) => {
  await page.goto("/");
  await expect(page.locator(".server-status")).toContainText("Server online", { timeout: 15_000 });
  await page.locator("a.new-list").click();
  await expect(page).toHaveURL(/\/l\/[0-9a-f-]{36}$/);
  await hydrated(page);
  await expect(page.locator(".todo-list li")).toHaveCount(0);
  const first = page.url();
  await page.goto("/");
  await expect(page.locator(".server-status")).toContainText("Server online", { timeout: 15_000 });
  await page.locator("a.new-list").click();
  await expect(page).toHaveURL(/\/l\/[0-9a-f-]{36}$/);
  expect(page.url()).not.toBe(first);
});

test("the New list link works without JavaScript", async ({ browser }) => {
  const ctx = await browser.newContext({ javaScriptEnabled: false });
  const page = await ctx.newPage();
  await page.goto("/");
  await page.locator("a.new-list").click();
  await expect(page).toHaveURL(/\/l\/[0-9a-f-]{36}$/);
  await expect(page.locator("section.todoapp")).toBeVisible();
  await ctx.close();
});

test("a list's title is editable on its page and shown in your lists with its open count", async ({ page }) => {
  const id = await openList(page);
  await page.locator("h1.list-title").dblclick();
  const edit = page.locator("input.edit-title");
  await expect(edit).toBeFocused();
  await edit.fill("  Groceries  ");
  await edit.press("Enter");
  await expect(page.locator("h1.list-title")).toHaveText("Groceries");
  await addTodos(page, "milk", "eggs", "bread");
  await page.locator(".todo-list li.todo").first().locator(".toggle").check();
  await settled(page);
  await expect(page).toHaveTitle(/Groceries/);

  await page.goto("/");
  const entry = page.locator(`.your-lists li[data-uid="${id}"]`);
  await expect(entry.locator("a")).toHaveText("Groceries");
  await expect(entry.locator(".open-count")).toHaveText("2 open items");
  await entry.locator("a").click();
  await expect(page).toHaveURL(new RegExp(`/l/${id}$`));
  await expect(titles(page)).toHaveText(["milk", "eggs", "bread"]);
});

test("another browser sees the title", async ({ page, browser }) => {
  const id = await openList(page);
  await page.locator("h1.list-title").dblclick();
  await page.locator("input.edit-title").fill("Shared");
  await page.locator("input.edit-title").press("Enter");
  await settled(page);
  const other = await (await browser.newContext()).newPage();
  await openList(other, id);
  await expect(other.locator("h1.list-title")).toHaveText("Shared");
  await other.context().close();
});

test("open a list by pasting its link", async ({ page }) => {
  const id = await openList(page);
  await addTodos(page, "pasted");
  await settled(page);
  await page.goto("/");
  await expect(page.locator(".server-status")).toContainText("Server online", { timeout: 15_000 });
  await page.locator("#open-link").fill(`http://somewhere.example/l/${id}/active`);
  await page.locator(".open-list button").click();
  await expect(page).toHaveURL(new RegExp(`/l/${id}$`));
  await expect(titles(page)).toHaveText(["pasted"]);

  await page.goto("/");
  await expect(page.locator(".server-status")).toContainText("Server online", { timeout: 15_000 });
  await page.locator("#open-link").fill("not a link");
  await page.locator(".open-list button").click();
  await expect(page.locator(".open-list .error-message")).toContainText("not a Tether list link");
});

test("a section heading is its own kind: its own button and component, not counted", async ({ page, browser }) => {
  const id = await openList(page);
  await addTodos(page, "milk");
  await page.locator(".new-todo").fill("Bakery");
  await page.locator("button.add-section").click();
  await addTodos(page, "bread");
  const rows = page.locator(".todo-list > li");
  await expect(rows).toHaveCount(3);
  await expect(rows.nth(1)).toHaveClass(/section/);
  await expect(rows.nth(1).locator("h2")).toHaveText("Bakery");
  await expect(rows.nth(1).locator(".toggle")).toHaveCount(0);
  // Not a todo: not counted, not toggled by toggle-all, not cleared.
  await expect(page.locator(".todo-count")).toHaveText("2 items left");
  await page.locator('label[for="toggle-all"]').click();
  await expect(page.locator(".todo-count")).toHaveText("0 items left");
  await page.locator(".clear-completed").click();
  await expect(page.locator(".todo-list > li")).toHaveCount(1);
  await expect(page.locator(".todo-list > li.section h2")).toHaveText("Bakery");
  await settled(page);
  const other = await (await browser.newContext()).newPage();
  await openList(other, id);
  await expect(other.locator(".todo-list > li.section h2")).toHaveText("Bakery");
  await other.context().close();
});

test.describe("offline moments", () => {
  test.use({ allowErrors: /ERR_INTERNET_DISCONNECTED|WebSocket connection to .* failed|net::ERR_/ });

  test("the inspector's view tree matches the DOM", async ({ page }) => {
    await openList(page);
    await addTodos(page, "a", "b");
    await page.locator(".new-todo").fill("Heading");
    await page.locator("button.add-section").click();
    await addTodos(page, "c");
    await page.locator("button.toggle-inspector").click();
    const inspector = page.locator("aside.inspector");
    await expect(inspector).toBeVisible();

    const listView = inspector.locator('.view-tree > li.view-node[data-view-name="list"]');
    await expect(listView).toHaveCount(1);
    const listViewUid = await listView.getAttribute("data-view-uid");
    expect(await page.locator("section.todoapp").getAttribute("data-view")).toBe(listViewUid);

    // Each item view in the DOM is a child of the list view in the tree, and the counts match.
    const domItems = page.locator(".todo-list > li");
    await expect(domItems).toHaveCount(4);
    const itemViews = listView.locator(":scope > ul > li.view-node");
    await expect(itemViews).toHaveCount(4);
    for (const li of await domItems.all()) {
      const viewUid = await li.getAttribute("data-view");
      const modelUid = await li.getAttribute("data-uid");
      const node = inspector.locator(`li.view-node[data-view-uid="${viewUid}"]`);
      await expect(node).toHaveAttribute("data-parent-uid", listViewUid!);
      await expect(node).toHaveAttribute("data-model-uid", modelUid!);
    }
    await expect(listView.locator(':scope > ul > li[data-kind="todo"]')).toHaveCount(3);
    await expect(listView.locator(':scope > ul > li[data-kind="section"]')).toHaveCount(1);

    // Removing an item removes its view; the model tree lists the rest.
    await page.locator(".todo-list li.todo").first().hover();
    await page.locator(".todo-list li.todo").first().locator(".destroy").click();
    await expect(itemViews).toHaveCount(3);
    await expect(inspector.locator(".model-tree li.model-node[data-kind=todo]")).toHaveCount(2);
    // Once the server has acknowledged everything, no op is pending.
    await settled(page);
    const pendingOps = inspector.locator(".pending-ops li.pending-op");
    await expect(pendingOps).toHaveCount(0);
    await expect(inspector.locator(".pending-ops li.none")).toHaveCount(1);
    // Ops made offline wait in the inspector's pending list, as many as the badge
    // counts, until they are pushed.
    await page.context().setOffline(true);
    await addTodos(page, "offline");
    await page.locator(".todo-list li.todo").first().locator(".toggle").check();
    await expect(pendingOps).toHaveCount(2);
    await expect(page.locator(".status .pending")).toHaveAttribute("data-count", "2");
    await expect(pendingOps.nth(0)).toContainText('"op":"create"');
    await expect(pendingOps.nth(0)).toContainText('"title":"offline"');
    await expect(pendingOps.nth(1)).toContainText('"op":"set"');
    await expect(inspector.locator(".pending-ops li.none")).toHaveCount(0);
    await page.context().setOffline(false);
    await expect(pendingOps).toHaveCount(0, { timeout: 10_000 });
    await expect(inspector.locator(".pending-ops li.none")).toHaveCount(1);
  });

  test("the status badge shows pending writes and the last sync time", async ({ page }) => {
    await openList(page, freshListId());
    const status = page.locator(".status");
    await expect(status.locator(".synced")).toHaveText(/^(synced (just now|\d+ s ago)|not synced yet)$/);
    await page.context().setOffline(true);
    await expect(status).toHaveAttribute("data-state", "offline");
    await addTodos(page, "queued");
    await expect(status.locator(".pending")).toHaveText("1 change pending");
    await page.context().setOffline(false);
    await settled(page);
    await expect(status.locator(".pending")).toHaveText("all changes saved");
    await expect(status.locator(".synced")).toHaveText("synced just now");
  });
});

test("typed text over the limit is kept with the reason, and the limit shows before it is reached", async ({ page }) => {
  await openList(page);
  const input = page.locator(".new-todo");
  const hint = page.locator(".header .limit-hint");
  const refused = page.locator(".header .refused");
  await input.fill("x".repeat(700));
  await expect(hint).toHaveCount(0);
  await input.fill("x".repeat(800));
  await expect(hint).toHaveText("224 of 1024 bytes left");
  await expect(hint).not.toHaveClass(/over/);
  const long = "y".repeat(1100);
  await input.fill(long);
  await expect(hint).toHaveText("76 bytes too long: at most 1024 bytes");
  await expect(hint).toHaveClass(/over/);

  // Enter: refused, and what was typed stays, with the reason.
  await input.press("Enter");
  await expect(refused).toContainText("at most 1024 bytes");
  await expect(input).toHaveValue(long);
  await expect(page.locator(".todo-list li")).toHaveCount(0);
  await expect(page.locator(".status .pending")).toHaveAttribute("data-count", "0");
  // Edited down, it is added and the field empties.
  await input.fill("short");
  await expect(refused).toHaveCount(0);
  await input.press("Enter");
  await expect(titles(page)).toHaveText(["short"]);
  await expect(input).toHaveValue("");
  await expect(hint).toHaveCount(0);

  // A refused rename keeps the editor open with the typed text and the reason.
  const item = page.locator(".todo-list li.todo");
  await item.locator("label").dblclick();
  await item.locator(".edit").fill(long);
  await expect(item.locator(".limit-hint")).toHaveClass(/over/);
  await item.locator(".edit").press("Enter");
  await expect(item).toHaveClass(/editing/);
  await expect(item.locator(".edit")).toHaveValue(long);
  await expect(item.locator(".refused")).toContainText("at most 1024 bytes");
  await item.locator(".edit").fill("renamed");
  await item.locator(".edit").press("Enter");
  await expect(item).not.toHaveClass(/editing/);
  await expect(titles(page)).toHaveText(["renamed"]);

  // The list's title has its own, smaller limit.
  await page.locator("h1.list-title").dblclick();
  const titleField = page.locator("input.edit-title");
  const longTitle = "t".repeat(300);
  await titleField.fill(longTitle);
  await titleField.press("Enter");
  await expect(titleField).toBeVisible();
  await expect(titleField).toHaveValue(longTitle);
  await expect(refused).toContainText("at most 256 bytes");
  await titleField.fill("Fine");
  await titleField.press("Enter");
  await expect(page.locator("h1.list-title")).toHaveText("Fine");
  await settled(page);
});

test.describe("the browser's clock is two hours behind the server's", () => {
  // Every Date in the page (Date.now and new Date()) runs two hours behind.
  test.beforeEach(async ({ page }) => {
    await page.addInitScript({
      content: `(() => {
        const shift = -2 * 3600 * 1000;
        const Real = Date;
        class Shifted extends Real {
          constructor(...args) { if (args.length === 0) super(Real.now() + shift); else super(...args); }
          static now() { return Real.now() + shift; }
        }
        globalThis.Date = Shifted;
      })();`,
    });
  });

  /** The server's clock, from the API. */
  async function serverNow(page: import("@playwright/test").Page) {
    const answer = await page.request.post("/api/ping", { data: {} });
    return ((await answer.json()) as { server_time_ms: number }).server_time_ms;
  }

  /** Checks the badge's "synced" time is the server's, recent, and reads as such. */
  async function syncedNow(page: import("@playwright/test").Page) {
    const synced = page.locator(".status .synced");
    await expect(synced).toHaveText(/^synced (just now|\d s ago|[1-5]\d s ago)$/);
    const at = Number(await synced.getAttribute("data-synced-at"));
    expect(Math.abs((await serverNow(page)) - at), "the synced time is on the server's clock").toBeLessThan(60_000);
  }

  test("'synced' is the server's time, for pulls and live changes, and navigating keeps it", async ({
    page,
    browser,
  }) => {
    const id = await openList(page);
    expect(await page.evaluate(() => Date.now()) - (await serverNow(page))).toBeLessThan(-3_600_000);
    await addTodos(page, "here");
    await settled(page);
    await syncedNow(page);

    // A change from another browser arrives live.
    const other = await (await browser.newContext()).newPage();
    await openList(other, id);
    await addTodos(other, "there");
    await expect(titles(page)).toHaveText(["here", "there"]);
    await syncedNow(page);
    await other.context().close();

    // Inside the app: home, then back to the list by its link (no page load).
    await page.goto("/");
    await expect(page.locator(".server-status")).toContainText("Server online", { timeout: 15_000 });
    await page.locator(`.your-lists li[data-uid="${id}"] a`).click();
    await expect(page).toHaveURL(new RegExp(`/l/${id}$`));
    await expect(titles(page)).toHaveText(["here", "there"]);
    await expect(page.locator(".status")).toHaveAttribute("data-state", "online");
    await syncedNow(page);
  });
});
