// Several nodes on one PostgreSQL database (docs/DEPLOYMENT.md): browsers on two
// different nodes edit one list together, and a browser behind nginx carries on
// when the node its live socket is on is killed. Needs TETHER_TEST_POSTGRES (a
// server URL; `make test` sets it): each run uses a fresh database on that server.
import { spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import type { Browser } from "@playwright/test";
import { test, expect, openList, addTodos, titles, settled, watchErrors, type Page } from "./fixtures";
import { startServer, startNginx, type OwnServer } from "./server";

// One cluster for the file: its tests run in order on one worker. Each drives two
// browsers on a debug build: room for a loaded machine (they take ~10 s alone).
test.describe.configure({ mode: "default", timeout: 60_000 });
// A killed node shows up as failed sockets and requests in the console.
const expected = /WebSocket connection to .* failed|Failed to fetch|net::ERR_|status of 50[234]/;
test.use({ allowErrors: expected });

const postgres = process.env.TETHER_TEST_POSTGRES;
let database = "";
let nodes: OwnServer[] = [];
let nginx: OwnServer | undefined;

test.beforeAll(async () => {
  if (!postgres) {
    throw new Error(
      "TETHER_TEST_POSTGRES is not set: run `make test`, or in end2end/ `../scripts/postgres.sh run npx playwright test`",
    );
  }
  database = `tether_e2e_${randomUUID().replaceAll("-", "")}`;
  const url = new URL(postgres);
  url.pathname = `/${database}`;
  const node = () => startServer({ TETHER_DATABASE_URL: url.toString() });
  // The first node creates and migrates the database; the others then start together.
  nodes = [await node()];
  await Promise.all([node(), node()].map((started) => started.then((n) => nodes.push(n))));
  // nginx balances nodes 2 and 3; node 1 is reached directly.
  nginx = await startNginx(nodes.slice(1));
});

test.afterAll(async () => {
  await nginx?.stop();
  await Promise.all(nodes.map((n) => n.stop()));
  if (postgres && database) {
    // Best effort: a developer's PostgreSQL keeps no test databases (psql may be missing).
    spawnSync("psql", [postgres, "-qc", `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`], { stdio: "ignore" });
  }
});

/** A page of a new browser (context) that talks to `url`; its errors fail the test. */
async function browserOn(browser: Browser, url: string, errors: string[]): Promise<Page> {
  const context = await browser.newContext({ baseURL: url });
  const page = await context.newPage();
  watchErrors(page, errors, expected);
  return page;
}

const todo = (page: Page, title: string) =>
  page.locator(".todo-list li.todo", { has: page.locator("label", { hasText: new RegExp(`^${title}$`) }) });

async function rename(page: Page, from: string, to: string) {
  await todo(page, from).locator("label").dblclick();
  await todo(page, from).locator(".edit").fill(to);
  await todo(page, from).locator(".edit").press("Enter");
}

/** This node's live sockets (its `tether_live_subscribers` gauge). */
async function liveSockets(node: OwnServer): Promise<number> {
  const text = await (await fetch(`${node.url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith("tether_live_subscribers "));
  return Number(line?.split(" ")[1] ?? 0);
}

/** The list as `node` renders it in its HTML (JavaScript off): titles, "(done)" if done. */
async function onServer(browser: Browser, node: OwnServer, list: string): Promise<string[]> {
  const context = await browser.newContext({ baseURL: node.url, javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto(`/l/${list}`);
  const shown = await page.locator(".todo-list li.todo").evaluateAll((lis) =>
    lis.map((li) => `${li.querySelector("label")?.textContent}${li.classList.contains("completed") ? " (done)" : ""}`),
  );
  await context.close();
  return shown;
}

test("browsers on two different nodes see each other's adds, edits and toggles live", async ({ browser, errors }) => {
  const [one, two] = nodes;
  const a = await browserOn(browser, one.url, errors);
  const b = await browserOn(browser, two.url, errors);
  const id = await openList(a);
  await openList(b, id);
  const live = { timeout: 2_000 };

  await addTodos(a, "from A");
  await expect(titles(b)).toHaveText(["from A"], live);
  await addTodos(b, "from B");
  await expect(titles(a)).toHaveText(["from A", "from B"], live);

  await rename(b, "from A", "edited by B");
  await expect(titles(a)).toHaveText(["edited by B", "from B"], live);
  await rename(a, "from B", "edited by A");
  await expect(titles(b)).toHaveText(["edited by B", "edited by A"], live);

  await todo(a, "edited by A").locator(".toggle").check();
  await expect(todo(b, "edited by A")).toHaveClass(/completed/, live);
  await todo(b, "edited by B").locator(".toggle").check();
  await expect(todo(a, "edited by B")).toHaveClass(/completed/, live);

  await settled(a);
  await settled(b);
  await a.context().close();
  await b.context().close();
});

test("behind nginx, a browser carries on when its node is killed", async ({ browser, errors }) => {
  const [direct, ...balanced] = nodes;
  const a = await browserOn(browser, nginx!.url, errors);
  const id = await openList(a);
  await addTodos(a, "before the kill");
  await settled(a);
  const watcher = await browserOn(browser, direct.url, errors);
  await openList(watcher, id);
  await expect(titles(watcher)).toHaveText(["before the kill"]);

  // The node A's live socket is on (the only socket on the balanced nodes) dies.
  let onIt: OwnServer | undefined;
  await expect.poll(async () => {
    const counts = await Promise.all(balanced.map(liveSockets));
    onIt = balanced[counts.indexOf(1)];
    return [...counts].sort();
  }).toEqual([0, 1]);
  const survivor = balanced.find((n) => n !== onIt)!;
  await onIt!.kill();

  // A's writes after the kill go through the other node...
  await addTodos(a, "after the kill");
  await todo(a, "before the kill").locator(".toggle").check();
  await settled(a);
  await expect.poll(() => liveSockets(survivor), { message: "A's socket moved to the other node" }).toBe(1);
  await expect.poll(() => onServer(browser, survivor, id)).toEqual(["before the kill (done)", "after the kill"]);
  // ...and reach the other browser live, as do the other browser's on A.
  await expect(titles(watcher)).toHaveText(["before the kill", "after the kill"]);
  await expect(todo(watcher, "before the kill")).toHaveClass(/completed/);
  await addTodos(watcher, "from the watcher");
  await expect(titles(a)).toHaveText(["before the kill", "after the kill", "from the watcher"]);
  await a.context().close();
  await watcher.context().close();
});
