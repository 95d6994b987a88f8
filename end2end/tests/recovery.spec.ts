// Recovering from a refused push: a batch the server finds too large is split and
// its parts pushed; a push refused for good reloads the list from the server, and
// live changes arriving during that reload cost no page of it.
import { test, expect, openList, addTodos, titles, settled, type Page } from "./fixtures";
import { startServer } from "./server";

// The refusals these tests provoke show up as failed requests in the console.
test.use({ allowErrors: /status of (400|413)/ });

/** The list as a user sees it: every row's text, in order. */
function rows(page: Page) {
  return page.locator(".todo-list > li").evaluateAll((lis) => lis.map((li) => li.textContent?.trim() ?? ""));
}

test("a batch over the server's request limit is split and every part pushed", async ({ browser }) => {
  const server = await startServer({ TETHER_MAX_REQUEST_BYTES: "4096" });
  try {
    const ctx = await browser.newContext({ baseURL: server.url });
    const page = await ctx.newPage();
    const id = await openList(page);
    // Written offline, the twelve items (about 9 KB as ops) go out as one batch.
    await ctx.setOffline(true);
    await expect(page.locator(".status")).toHaveAttribute("data-state", "offline");
    const items = Array.from({ length: 12 }, (_, i) => `item ${i} ${"x".repeat(400)}`);
    await addTodos(page, ...items);
    await expect(page.locator(".status .pending")).toHaveAttribute("data-count", "12");
    const answers: number[] = [];
    page.on("response", (r) => {
      if (r.url().endsWith("/api/push")) answers.push(r.status());
    });
    await ctx.setOffline(false);
    await settled(page);
    expect(answers, "the whole batch was refused as too large").toContain(413);
    expect(answers.filter((s) => s === 200).length, "its parts were accepted").toBeGreaterThan(1);
    await expect(page.locator(".status .problem")).toHaveCount(0);

    const other = await (await browser.newContext({ baseURL: server.url })).newPage();
    await openList(other, id);
    await expect(titles(other)).toHaveText(items);
    await other.context().close();
    await ctx.close();
  } finally {
    await server.stop();
  }
});

test("after a refused push the list is pulled again whole, though live changes arrive between its pages", async ({
  page,
  browser,
}) => {
  let liveArrived = false;
  page.on("websocket", (ws) =>
    ws.on("framereceived", (f) => {
      if (String(f.payload).includes("added during the reload")) liveArrived = true;
    }),
  );
  const id = await openList(page);
  const many = Array.from({ length: 12 }, (_, i) => `item ${i}`);
  await addTodos(page, ...many);
  await settled(page);
  const other = await (await browser.newContext()).newPage();
  await openList(other, id);

  // The reload pulls pages of 3; after its first page another browser adds an item,
  // which reaches this page's live socket before the page does.
  let pulls = 0;
  let firstPageAnswered = false;
  await page.route("**/api/pull", async (route) => {
    const body = JSON.parse(route.request().postData() ?? "{}");
    const response = await route.fetch({ postData: JSON.stringify({ ...body, limit: 3 }) });
    if (pulls++ === 0) {
      await addTodos(other, "added during the reload");
      await expect.poll(() => liveArrived).toBe(true);
      await page.waitForTimeout(200);
      await route.fulfill({ response });
      firstPageAnswered = true;
    } else {
      await route.fulfill({ response });
    }
  });
  // The next push is refused for good: it is dropped and the list reloaded.
  await page.route(
    "**/api/push",
    (route) => route.fulfill({ status: 400, contentType: "application/json", body: '{"code": "client_mismatch"}' }),
    { times: 1 },
  );
  await addTodos(page, "refused");
  await expect(page.locator(".status .problem")).toContainText("refused");
  await expect.poll(() => firstPageAnswered, { timeout: 15_000 }).toBe(true);
  await settled(page);
  await settled(other);
  const expected = [...many, "added during the reload"];
  await expect(titles(page)).toHaveText(expected);
  await expect.poll(() => rows(page)).toEqual(await rows(other));
  expect(pulls, "the reload took several pages").toBeGreaterThan(2);
  await other.context().close();
});
