// Sync end to end: live collaboration between browsers, offline work and catch-up,
// cross-tab updates, reloads, and the server's copy as the reference.
import {
  test,
  expect,
  openList,
  addTodos,
  titles,
  settled,
  hydrated,
  type Page,
  type BrowserContext,
} from "./fixtures";

const todo = (page: Page, title: string) =>
  page.locator(".todo-list li.todo", { has: page.locator("label", { hasText: new RegExp(`^${title}$`) }) });

/** The list as a user sees it: each todo's title and whether it is done, in order. */
async function snapshot(page: Page) {
  return page.locator(".todo-list li.todo").evaluateAll((lis) =>
    lis.map((li) => ({
      title: li.querySelector("label")?.textContent ?? "",
      done: li.classList.contains("completed"),
    })),
  );
}

async function rename(page: Page, from: string, to: string) {
  await todo(page, from).locator("label").dblclick();
  await todo(page, from).locator(".edit").fill(to);
  await todo(page, from).locator(".edit").press("Enter");
}

// Offline pages log failed requests and sockets; those are expected here.
test.use({ allowErrors: /ERR_INTERNET_DISCONNECTED|WebSocket connection to .* failed|Failed to fetch|net::ERR_/ });

test("two browsers see each other's add, edit, toggle and delete within a second", async ({ page, browser }) => {
  const id = await openList(page);
  const other = await browser.newContext();
  const b = await other.newPage();
  await openList(b, id);
  const fast = { timeout: 1_000 };

  await addTodos(page, "from A");
  await expect(titles(b)).toHaveText(["from A"], fast);
  await addTodos(b, "from B");
  await expect(titles(page)).toHaveText(["from A", "from B"], fast);

  await rename(b, "from A", "edited by B");
  await expect(titles(page)).toHaveText(["edited by B", "from B"], fast);

  await todo(page, "from B").locator(".toggle").check();
  await expect(todo(b, "from B")).toHaveClass(/completed/, fast);

  await todo(b, "edited by B").hover();
  await todo(b, "edited by B").locator(".destroy").click();
  await expect(titles(page)).toHaveText(["from B"], fast);
  await other.close();
});

test("offline edits converge with concurrent edits from another browser, nothing lost or doubled", async ({
  page: a,
  browser,
}) => {
  const id = await openList(a);
  await addTodos(a, "milk", "eggs", "bread");
  await settled(a);
  const ctxB = await browser.newContext();
  const b = await ctxB.newPage();
  await openList(b, id);
  await expect(titles(b)).toHaveText(["milk", "eggs", "bread"]);

  // A goes offline and keeps working.
  await a.context().setOffline(true);
  await expect(a.locator(".status")).toHaveAttribute("data-state", "offline");
  await rename(a, "milk", "oat milk"); // same item B edits
  await todo(a, "eggs").locator(".toggle").check(); // another item
  await addTodos(a, "apples"); // a new item
  await todo(a, "bread").hover();
  await todo(a, "bread").locator(".destroy").click(); // B edits it concurrently: delete wins
  await expect(a.locator(".status .pending")).not.toHaveAttribute("data-count", "0");

  // Meanwhile B edits the same and other items.
  await rename(b, "milk", "goat milk");
  await rename(b, "bread", "rye bread");
  await addTodos(b, "coffee");
  await settled(b);

  // A comes back: its outbox is pushed and it catches up from its cursor.
  await a.context().setOffline(false);
  await settled(a);
  await settled(b);

  const fresh = await (await browser.newContext()).newPage();
  await openList(fresh, id);
  const server = await snapshot(fresh);
  await expect.poll(() => snapshot(a)).toEqual(server);
  await expect.poll(() => snapshot(b)).toEqual(server);

  // Nothing lost or doubled: each item once; the later rename of milk wins (B's:
  // A renamed it first, while offline), A's delete of bread wins over B's
  // concurrent rename (no resurrection), and both new items are there once.
  const names = server.map((t) => t.title);
  expect(names.filter((n) => n.endsWith("milk"))).toHaveLength(1);
  expect(names).toContain("goat milk");
  expect(names).not.toContain("rye bread");
  expect(names).not.toContain("bread");
  expect(names.filter((n) => n === "apples")).toHaveLength(1);
  expect(names.filter((n) => n === "coffee")).toHaveLength(1);
  expect(server.find((t) => t.title === "eggs")?.done).toBe(true);
  await ctxB.close();
  await fresh.context().close();
});

test("a catch-up too large for one live message arrives whole, in order, once", async ({ page: a, browser }) => {
  // The server sends a run of changes in messages of at most 16 KiB (`more: true`
  // on all but the last); the tab gathers them and applies the run at once.
  const id = await openList(a);
  await addTodos(a, "first");
  await settled(a);
  let pieces = 0;
  a.on("websocket", (ws) =>
    ws.on("framereceived", (f) => {
      const text = String(f.payload);
      if (text.includes('"type":"changes"') && text.includes('"more":true')) pieces += 1;
    }),
  );
  await a.context().setOffline(true);
  await expect(a.locator(".status")).toHaveAttribute("data-state", "offline");

  // Meanwhile another browser adds 40 todos of ~600 characters: ~35 KB of changes.
  const ctxB = await browser.newContext();
  const b = await ctxB.newPage();
  await openList(b, id);
  const long = (i: number) => `item ${i} ${"lorem ipsum ".repeat(50).trim()}`;
  const added = Array.from({ length: 40 }, (_, i) => long(i));
  await addTodos(b, ...added);
  await settled(b);

  await a.context().setOffline(false);
  await settled(a);
  await expect(titles(a)).toHaveText(["first", ...added]);
  expect(pieces, "the catch-up came in several messages").toBeGreaterThan(0);
  await expect.poll(() => snapshot(a)).toEqual(await snapshot(b));
  await ctxB.close();
});

test("a tab closed while offline with pending edits pushes them when reopened online", async ({ browser }) => {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  const id = await openList(page);
  await addTodos(page, "online item");
  await settled(page);
  await ctx.setOffline(true);
  await expect(page.locator(".status")).toHaveAttribute("data-state", "offline");
  await addTodos(page, "written offline");
  await todo(page, "online item").locator(".toggle").check();
  await expect(page.locator(".status .pending")).toHaveAttribute("data-count", "2");
  await page.close();

  // Later, online again: the edits reach the server from the reopened tab.
  await ctx.setOffline(false);
  const reopened = await ctx.newPage();
  await openList(reopened, id);
  await settled(reopened);
  const check = await (await browser.newContext()).newPage();
  await openList(check, id);
  await expect(titles(check)).toHaveText(["online item", "written offline"]);
  await expect(todo(check, "online item")).toHaveClass(/completed/);
  await ctx.close();
  await check.context().close();
});

test("reload keeps everything, and a new browser context loads it from the server", async ({ page, browser }) => {
  // Five page loads, each hydrating the debug bundle: 20-30 s on a busy 2-core machine.
  test.slow();
  const id = await openList(page);
  await addTodos(page, "one", "two", "three");
  await todo(page, "two").locator(".toggle").check();
  await settled(page);
  await page.reload();
  await hydrated(page);
  await expect(titles(page)).toHaveText(["one", "two", "three"]);
  await expect(todo(page, "two")).toHaveClass(/completed/);

  // With no sync call answered, the list opened inside the app (no page load, so no
  // server HTML) shows from this browser's local copy alone.
  let blocked = true;
  await page.route("**/api/**", (route) => (blocked ? route.abort() : route.fallback()));
  await page.routeWebSocket("**/api/live", (ws) => (blocked ? ws.close() : ws.connectToServer()));
  await page.goto("/");
  await expect(page.locator(".server-status")).toContainText("Server unreachable", { timeout: 15_000 });
  await page.locator(`.your-lists li[data-uid="${id}"] a`).click();
  await expect(page).toHaveURL(new RegExp(`/l/${id}$`));
  await expect(titles(page)).toHaveText(["one", "two", "three"]);
  await expect(todo(page, "two")).toHaveClass(/completed/);
  await expect(page.locator(".status")).not.toHaveAttribute("data-state", "online");

  // What the server never got comes back from the local copy too: written while
  // no sync call is answered, then reloaded (the server's HTML lacks it).
  await addTodos(page, "four");
  await todo(page, "one").locator(".toggle").check();
  await expect(page.locator(".status .pending")).toHaveAttribute("data-count", "2");
  await page.reload();
  await hydrated(page);
  await expect(titles(page)).toHaveText(["one", "two", "three", "four"]);
  await expect(todo(page, "one")).toHaveClass(/completed/);
  await expect(page.locator(".status .pending")).toHaveAttribute("data-count", "2");
  await expect(page.locator(".status")).not.toHaveAttribute("data-state", "online");
  blocked = false;
  await settled(page);

  const other = await (await browser.newContext()).newPage();
  await openList(other, id);
  await expect(titles(other)).toHaveText(["one", "two", "three", "four"]);
  await expect(todo(other, "two")).toHaveClass(/completed/);
  await expect(todo(other, "one")).toHaveClass(/completed/);
  await other.context().close();
});

test("two tabs of one browser see each other's edits at once, also while offline", async ({ context }) => {
  const a = await context.newPage();
  const id = await openList(a);
  const b = await context.newPage();
  await openList(b, id);
  await addTodos(a, "tab A");
  await expect(titles(b)).toHaveText(["tab A"], { timeout: 1_000 });

  await context.setOffline(true);
  await expect(a.locator(".status")).toHaveAttribute("data-state", "offline");
  await addTodos(b, "tab B offline");
  await expect(titles(a)).toHaveText(["tab A", "tab B offline"], { timeout: 1_000 });
  await todo(a, "tab A").locator(".toggle").check();
  await expect(todo(b, "tab A")).toHaveClass(/completed/, { timeout: 1_000 });

  await context.setOffline(false);
  await settled(a);
  await settled(b);
});

test("the page is complete in the server's HTML: readable without JavaScript", async ({ page, browser }) => {
  const id = await openList(page);
  await addTodos(page, "first", "second");
  await todo(page, "second").locator(".toggle").check();
  await settled(page);

  const noJs = await browser.newContext({ javaScriptEnabled: false });
  const plain = await noJs.newPage();
  await plain.goto(`/l/${id}`);
  await expect(titles(plain)).toHaveText(["first", "second"]);
  await expect(todo(plain, "second")).toHaveClass(/completed/);
  await expect(todo(plain, "second").locator(".toggle")).toBeChecked();
  await expect(plain.locator(".todo-count")).toHaveText("1 item left");
  await plain.goto(`/l/${id}/completed`);
  await expect(titles(plain)).toHaveText(["second"]);
  await noJs.close();
});

test("an item re-renders only when its own fields change", async ({ page }) => {
  await openList(page);
  await addTodos(page, "a", "b", "c");
  await settled(page);
  // Count DOM mutations inside each item while only "b" changes.
  await page.evaluate(() => {
    const w = window as unknown as { mutations: Record<string, number> };
    w.mutations = {};
    for (const li of document.querySelectorAll(".todo-list li.todo")) {
      const title = li.querySelector("label")!.textContent!;
      w.mutations[title] = 0;
      new MutationObserver((records) => (w.mutations[title] += records.length)).observe(li, {
        subtree: true,
        attributes: true,
        childList: true,
        characterData: true,
      });
    }
  });
  await todo(page, "b").locator(".toggle").check();
  await rename(page, "b", "b2");
  await settled(page);
  const mutations = await page.evaluate(() => (window as unknown as { mutations: Record<string, number> }).mutations);
  expect(mutations["b"]).toBeGreaterThan(0);
  expect(mutations["a"]).toBe(0);
  expect(mutations["c"]).toBe(0);
});

test("local-only state (which item is being edited) never leaves the tab", async ({ page, browser }) => {
  const id = await openList(page);
  await addTodos(page, "shared", "other");
  await settled(page);
  const otherContext = await browser.newContext();
  const other = await otherContext.newPage();
  await openList(other, id);
  const sameBrowser = await page.context().newPage();
  await openList(sameBrowser, id);
  await todo(page, "shared").locator("label").dblclick();
  await expect(todo(page, "shared")).toHaveClass(/editing/);
  await expect(page.locator(".status .pending")).toHaveAttribute("data-count", "0");
  // While still editing, a synced change made in the same tab (a click that does not
  // move the focus) reaches the other browser and the other tab; the editing state
  // does not.
  await todo(page, "other").locator(".toggle").evaluate((el: HTMLElement) => el.click());
  await expect(todo(page, "shared")).toHaveClass(/editing/);
  for (const elsewhere of [other, sameBrowser]) {
    await expect(todo(elsewhere, "other")).toHaveClass(/completed/);
    await expect(todo(elsewhere, "shared")).toHaveCount(1);
    await expect(todo(elsewhere, "shared")).not.toHaveClass(/editing/);
  }
  // Nor is it on the server.
  const pulled = await page.request.post("/api/pull", { data: { list: id, after: 0, limit: null } });
  expect(JSON.stringify(await pulled.json())).not.toContain("editing");
  await otherContext.close();
  await sameBrowser.close();
});
