// The local copy across an update: a list's copy saved by an older build, in the
// previous layout (snapshot version 1: every node as the server stores it, with
// its full stamps), is still read. Offline the list shows from it, with the write
// a closed tab left unsent; back online that write reaches the server, and the
// copy is saved again in the current layout (version 2).
import { randomUUID } from "node:crypto";
import { test, expect, openList, addTodos, titles, settled, watchErrors } from "./fixtures";

// With every sync call refused: failed requests and sockets.
const ALLOWED = /ERR_|WebSocket connection to .* failed|Failed to fetch|Failed to load resource/;
test.use({ allowErrors: ALLOWED });

const LATE = "written before the update";

/** What an older build left in localStorage for list `id`: its copy in version 1,
 *  with the server's nodes and one create a closed tab did not send, and that
 *  tab's outbox. */
function oldBuildStorage(id: string, pulled: { changes: { node: unknown }[]; cursor: number; server_time_ms: number }) {
  const tab = randomUUID();
  const stamp = `${Date.now()}:0:${tab}`;
  const node = randomUUID();
  const op = {
    client: tab,
    seq: 1,
    stamp,
    op: "create",
    node,
    kind: "todo",
    parent: id,
    order: "a9",
    fields: { title: LATE, completed: false },
  };
  const written = {
    uid: node,
    kind: { v: "todo", s: stamp },
    pos: { v: { parent: id, order: "a9" }, s: stamp },
    fields: { completed: { v: false, s: stamp }, title: { v: LATE, s: stamp } },
    deleted: null,
  };
  const copy = {
    format: "tether.replica",
    version: 1,
    list: id,
    client: tab,
    clock: { client: tab, max_skew_ms: 300_000, last: stamp },
    next_seq: 2,
    cursor: { version: pulled.cursor, synced_at_ms: pulled.server_time_ms },
    nodes: [...pulled.changes.map((c) => c.node), written],
    outbox: [op],
  };
  return [
    [`tether:state:${id}`, JSON.stringify(copy)],
    [`tether:outbox:${id}:${tab}`, JSON.stringify([op])],
    ["tether:lists", JSON.stringify([{ uid: id, title: "", open: 3, opened_ms: Date.now() }])],
  ];
}

test("a local copy saved in the previous format is read offline, and its pending write reaches the server", async ({
  page,
  browser,
  errors,
}) => {
  test.slow();
  const id = await openList(page);
  await addTodos(page, "one", "two");
  await settled(page);
  const pulled = await (
    await page.request.post("/api/pull", { data: { list: id, after: 0, limit: null } })
  ).json();
  expect(pulled.changes.length).toBeGreaterThan(0);

  // This browser ran the older build: its storage holds what that build wrote.
  const context = await browser.newContext();
  await context.addInitScript((entries) => {
    if (sessionStorage.getItem("seeded")) return;
    sessionStorage.setItem("seeded", "1");
    for (const [key, value] of entries) localStorage.setItem(key, value);
  }, oldBuildStorage(id, pulled));
  const later = await context.newPage();
  watchErrors(later, errors, ALLOWED);

  // No sync call answered, and the list opened inside the app (no page load, so no
  // server HTML): what shows comes from the local copy alone.
  let blocked = true;
  await later.route("**/api/**", (route) => (blocked ? route.abort() : route.fallback()));
  await later.routeWebSocket("**/api/live", (ws) => (blocked ? ws.close() : ws.connectToServer()));
  await later.goto("/");
  await expect(later.locator(".server-status")).toContainText("Server unreachable", { timeout: 15_000 });
  await later.locator(`.your-lists li[data-uid="${id}"] a`).click();
  await expect(later).toHaveURL(new RegExp(`/l/${id}$`));
  await expect(titles(later)).toHaveText(["one", "two", LATE]);
  await expect(later.locator(".status .pending")).toHaveAttribute("data-count", "1");
  await expect(later.locator(".status")).not.toHaveAttribute("data-state", "online");
  await expect(later.locator(".status .problem")).toHaveCount(0);
  // The copy is saved again, in the current layout.
  const stored = () => later.evaluate((key) => localStorage.getItem(key) ?? "", `tether:state:${id}`);
  await expect.poll(stored).toContain('"version":2');
  expect(await stored()).toContain(LATE);

  // Back online: the write reaches the server once, and the first page sees it live.
  blocked = false;
  await context.setOffline(true);
  await context.setOffline(false);
  await settled(later);
  await expect(titles(later)).toHaveText(["one", "two", LATE]);
  await expect(titles(page)).toHaveText(["one", "two", LATE]);
  const after = await (
    await page.request.post("/api/pull", { data: { list: id, after: 0, limit: null } })
  ).json();
  const late = after.changes.filter(
    (c: { node: { fields?: { title?: { v: string } } } }) => c.node.fields?.title?.v === LATE,
  );
  expect(late).toHaveLength(1);
  await context.close();
});
