// Browser faults and hostile input: storage full or corrupted, a server that fails
// or hangs, and user text that looks like HTML. Each time the app says what is going
// on, keeps the user's changes, and ends up in sync with the server.
import {
  test,
  expect,
  openList,
  addTodos,
  titles,
  settled,
  hydrated,
  recordStates,
  statesSeen,
  type Page,
} from "./fixtures";

// The injected 503s, and the app's own warnings about storage.
test.use({ allowErrors: /status of 503|QuotaExceededError|storage is full|could not be read/ });

/** Another browser adds `items` to list `id` and waits until the server has them. */
async function seedFromElsewhere(page: Page, id: string, ...items: string[]) {
  const other = await page.context().browser()!.newContext();
  const p = await other.newPage();
  await openList(p, id);
  await addTodos(p, ...items);
  await settled(p);
  await other.close();
}

/** Fills this origin's localStorage to the brim (runs in the page). */
function fillLocalStorage() {
  let chunk = "x".repeat(1 << 20);
  let i = 0;
  while (chunk.length > 0) {
    try {
      localStorage.setItem(`junk-${i++}`, chunk);
    } catch {
      chunk = chunk.slice(0, Math.floor(chunk.length / 2));
    }
  }
}

test("localStorage full: the app says so and still syncs every change", async ({ page, browser }) => {
  // Fill this origin's storage before the app starts (once: not again on reload).
  await page.addInitScript(
    `if (!sessionStorage.getItem("filled")) { sessionStorage.setItem("filled", "1"); (${fillLocalStorage})(); }`,
  );
  const id = await openList(page);
  await addTodos(page, "kept in memory", "and sent");
  await expect(page.locator(".status .problem")).toContainText("storage is full");
  await settled(page);
  const other = await (await browser.newContext()).newPage();
  await openList(other, id);
  await expect(titles(other)).toHaveText(["kept in memory", "and sent"]);
  await other.context().close();
});

test("storage full while offline: the unsent write is kept before the list's cached copy, and reaches the server", async ({
  page,
  browser,
}) => {
  const id = await openList(page);
  // A copy of a few KB, which makes room for a write when it goes.
  const sent = [1, 2, 3, 4].map((n) => `already sent ${n} ${"·".repeat(400)}`);
  await addTodos(page, ...sent);
  await settled(page);
  const stateKey = `tether:state:${id}`;
  await expect.poll(() => page.evaluate((k) => localStorage.getItem(k) !== null, stateKey)).toBe(true);

  // Offline, with this origin's storage filled to the brim: a new todo's outbox
  // cannot be saved until the list's cached copy (which the server has) makes room.
  const context = page.context();
  await context.setOffline(true);
  await expect(page.locator(".status")).toHaveAttribute("data-state", "offline");
  await page.evaluate(fillLocalStorage);
  await addTodos(page, "written offline");
  await expect(page.locator(".status .problem")).toContainText("storage is full");
  const outboxes = () =>
    page.evaluate(
      (prefix) =>
        Object.keys(localStorage)
          .filter((k) => k.startsWith(prefix))
          .map((k) => localStorage.getItem(k))
          .join(""),
      `tether:outbox:${id}:`,
    );
  expect(await outboxes()).toContain("written offline");
  expect(await page.evaluate((k) => localStorage.getItem(k), stateKey)).toBeNull();

  // The tab closes with its write unsent; the next one, online, sends it once.
  await page.close();
  await context.setOffline(false);
  const next = await context.newPage();
  await openList(next, id);
  await settled(next);
  const noJs = await browser.newContext({ javaScriptEnabled: false });
  const check = await noJs.newPage();
  await check.goto(`/l/${id}`);
  await expect(titles(check)).toHaveText([...sent, "written offline"]);
  await noJs.close();
});

for (const [name, stored] of [
  ["foreign JSON", JSON.stringify({ hello: "world" })],
  ["not JSON at all", "{this is not json"],
  ["an older format", JSON.stringify({ format: "tether.replica", version: 0 })],
] as const) {
  test(`a corrupted local copy (${name}) is reported and the list recovers from the server`, async ({ page }) => {
    const id = crypto.randomUUID();
    await seedFromElsewhere(page, id, "from the server");
    await page.addInitScript(
      ([key, value]) => {
        if (!sessionStorage.getItem("corrupted")) {
          sessionStorage.setItem("corrupted", "1");
          localStorage.setItem(key, value);
        }
      },
      [`tether:state:${id}`, stored],
    );
    await page.goto(`/l/${id}`);
    await hydrated(page);
    await expect(page.locator(".status .problem")).toContainText("could not be read");
    await expect(titles(page)).toHaveText(["from the server"]);
    // And it keeps working: the next change is saved locally and on the server.
    await addTodos(page, "after recovery");
    await settled(page);
    const saved = () => page.evaluate((key) => localStorage.getItem(key) ?? "", `tether:state:${id}`);
    await expect.poll(saved).toContain("after recovery");
    expect(await saved()).toContain('"format":"tether.replica"');
  });
}

test("a server answering 5xx is retried with backoff, the badge shows it, nothing is lost", async ({ page, browser }) => {
  const id = await openList(page);
  let failures = 0;
  await page.route("**/api/push", async (route) => {
    if (failures < 3) {
      failures++;
      await route.fulfill({
        status: 503,
        contentType: "application/json",
        body: JSON.stringify({ code: "unavailable", detail: "injected by the test" }),
      });
    } else {
      await route.continue();
    }
  });
  await recordStates(page);
  await addTodos(page, "survives 503s");
  await expect(page.locator(".status .pending")).toHaveAttribute("data-count", "1");
  await expect.poll(() => statesSeen(page)).toContain("retrying");
  await settled(page);
  expect(failures).toBe(3);
  const other = await (await browser.newContext()).newPage();
  await openList(other, id);
  await expect(titles(other)).toHaveText(["survives 503s"]);
  await other.context().close();
});

test("a push that gets no answer times out and is retried; it is applied once", async ({ page, browser }) => {
  const id = await openList(page);
  let pushes = 0;
  let firstAck: { acked_seq: number; version: number } | undefined;
  await page.route("**/api/push", async (route) => {
    if (pushes++ === 0) {
      // Let the server commit it, but never answer the browser.
      const answer = await route.fetch();
      firstAck = await answer.json();
      await new Promise(() => {});
    } else {
      await route.continue();
    }
  });
  await recordStates(page);
  await addTodos(page, "once only");
  // The badge says "retrying" between the timeout and the (quick) retry.
  await expect.poll(() => statesSeen(page), { timeout: 15_000 }).toContain("retrying");
  await settled(page);
  expect(pushes, "the batch was sent again").toBeGreaterThan(1);
  // The server stored it once: the retry changed nothing, so the list's newest
  // change is still the first push's.
  expect(firstAck?.acked_seq).toBe(1);
  const pulled = await (
    await page.request.post("/api/pull", { data: { list: id, after: 0, limit: null } })
  ).json();
  expect(pulled.changes).toHaveLength(1);
  expect(pulled.cursor).toBeLessThanOrEqual(firstAck!.version);
  const other = await (await browser.newContext()).newPage();
  await openList(other, id);
  await expect(titles(other)).toHaveText(["once only"]);
  await other.context().close();
});

test("user text is always text: HTML in titles shows literally", async ({ page, browser }) => {
  const evil = `<img src=x onerror="window.__xss=1">`;
  const id = await openList(page);
  await addTodos(page, evil);
  await page.locator("h1.list-title").dblclick();
  await page.locator("input.edit-title").fill(evil);
  await page.locator("input.edit-title").press("Enter");
  await expect(titles(page)).toHaveText([evil]);
  await expect(page.locator("h1.list-title")).toHaveText(evil);
  await settled(page);
  // Server-rendered too: reload, and without JavaScript.
  await page.reload();
  await hydrated(page);
  await expect(titles(page)).toHaveText([evil]);
  expect(await page.locator(".todo-list img, h1 img").count()).toBe(0);
  expect(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss)).toBeUndefined();
  const noJs = await browser.newContext({ javaScriptEnabled: false });
  const plain = await noJs.newPage();
  await plain.goto(`/l/${id}`);
  await expect(titles(plain)).toHaveText([evil]);
  expect(await plain.locator(".todo-list img").count()).toBe(0);
  await noJs.close();
});

test("error responses carry no stack traces or internals", async ({ request }) => {
  const bad = await request.post("/api/push", {
    headers: { "content-type": "application/json" },
    data: '{"list": 5, "client": [], "ops": "nope"',
  });
  expect(bad.status()).toBe(400);
  const body = await bad.text();
  expect(JSON.parse(body).code).toBe("malformed_request");
  expect(body).not.toMatch(/panicked|src\/|\.rs:|sqlx|SELECT|backtrace/i);
  const missing = await request.get("/l/not-a-uid");
  expect(missing.status()).toBe(400);
  expect(await missing.text()).not.toMatch(/panicked|src\/|\.rs:\d/);
});
