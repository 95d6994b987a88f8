// Opening lists offline: the service worker keeps the app's shell, so a list this
// browser has seen opens from a reload, a new tab or a browser restart with no
// network and no server; a list it has never seen says so and loads by itself later;
// a new build replaces the old shell. The server is taken away for real (stopped),
// not only the context set offline: a browser's offline switch may not reach a
// service worker's own requests. Each test has its own server on its own port and
// database, stopped and started again on both.
import { chromium, type Browser, type BrowserContext } from "@playwright/test";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import {
  test,
  expect,
  watchErrors,
  freshListId,
  hydrated,
  addTodos,
  titles,
  settled,
  type Page,
} from "./fixtures";
import { freePort, startServer, type OwnServer } from "./server";

// With the server gone: failed requests, sockets and pings.
const ALLOWED = /ERR_|WebSocket connection to .* failed|Failed to load resource|FetchEvent/;
test.use({ allowErrors: ALLOWED });

const repo = path.resolve(__dirname, "..", "..");

/** A server that can be stopped and started again on the same port and database
 *  (so the browser sees the same origin, with its service worker and storage). */
class Restartable {
  private server: OwnServer | null = null;
  private constructor(
    readonly port: number,
    readonly dir: string,
  ) {}

  static async start(settings: Record<string, string> = {}): Promise<Restartable> {
    const s = new Restartable(await freePort(), fs.mkdtempSync(path.join(os.tmpdir(), "tether-e2e-offline-")));
    await s.start(settings);
    return s;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(settings: Record<string, string> = {}) {
    this.server = await startServer({
      TETHER_ADDR: `127.0.0.1:${this.port}`,
      TETHER_DATABASE_URL: `sqlite://${path.join(this.dir, "tether.db")}`,
      ...settings,
    });
  }

  async stop() {
    await this.server?.stop();
    this.server = null;
  }

  async remove() {
    await this.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A page in a fresh context on `server`, its console errors checked like the others. */
async function pageOn(browser: Browser, server: Restartable, errors: string[]): Promise<Page> {
  const context = await browser.newContext({ baseURL: server.url });
  const page = await context.newPage();
  watchErrors(page, errors, ALLOWED);
  return page;
}

/** The build this page runs, as its head says. */
function buildOf(page: Page): Promise<string | null> {
  return page.locator('meta[name="tether-build"]').getAttribute("content");
}

/** The service worker's caches in this page's origin. */
function cacheNames(page: Page): Promise<string[]> {
  return page.evaluate(() => caches.keys());
}

/** Waits until the service worker of this page's build is active with its shell kept. */
async function offlineReady(page: Page) {
  const build = await buildOf(page);
  await expect
    .poll(
      () =>
        page.evaluate(async (build) => {
          const registration = await navigator.serviceWorker.getRegistration();
          return !!registration?.active && (await caches.keys()).includes(`tether-shell-${build}`);
        }, build),
      { timeout: 30_000 },
    )
    .toBe(true);
}

/** The todos the server has for `id`, from its rendered page with JavaScript off. */
async function onServer(browser: Browser, server: Restartable, id: string): Promise<string[]> {
  const context = await browser.newContext({ baseURL: server.url, javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto(`/l/${id}`);
  const shown = await titles(page).allTextContents();
  await context.close();
  return shown;
}

async function goOffline(context: BrowserContext, server: Restartable) {
  await context.setOffline(true);
  await server.stop();
}

async function comeBack(context: BrowserContext, server: Restartable) {
  await server.start();
  await context.setOffline(false);
}

const status = (page: Page) => page.locator(".status");
const pending = (page: Page) => page.locator(".status .pending");

test("a list seen here reloads offline with its pending writes, and they are pushed once when back", async ({
  browser,
  errors,
}) => {
  test.slow();
  const server = await Restartable.start();
  try {
    const page = await pageOn(browser, server, errors);
    const id = freshListId();
    await page.goto(`/l/${id}`);
    await hydrated(page);
    await addTodos(page, "one", "two");
    await settled(page);
    await offlineReady(page);

    await goOffline(page.context(), server);
    await page.reload();
    await expect(titles(page)).toHaveText(["one", "two"]);
    await expect(status(page)).toHaveAttribute("data-state", "offline");
    await addTodos(page, "three");
    await expect(pending(page)).toHaveAttribute("data-count", "1");
    await expect(pending(page)).toHaveText("1 change pending");

    await page.reload();
    await expect(titles(page)).toHaveText(["one", "two", "three"]);
    await expect(pending(page)).toHaveAttribute("data-count", "1");
    await expect(status(page)).toHaveAttribute("data-state", "offline");
    // Everything works on the shell: toggling, filters, headings.
    await page.locator(".todo-list li.todo").first().locator(".toggle").check();
    await page.locator(".filters a", { hasText: "Active" }).click();
    await expect(titles(page)).toHaveText(["two", "three"]);
    await page.locator(".filters a", { hasText: "All" }).click();
    await page.locator(".new-todo").fill("Later");
    await page.locator("button.add-section").click();
    await expect(page.locator(".todo-list > li.section h2")).toHaveText("Later");
    await expect(pending(page)).toHaveAttribute("data-count", "3");

    await comeBack(page.context(), server);
    await settled(page);
    expect(await onServer(browser, server, id)).toEqual(["one", "two", "three"]);
    await page.context().close();
  } finally {
    await server.remove();
  }
});

test("after a browser restart offline, a closed tab's write is pending at once and pushed within seconds", async ({
  browser,
  errors,
}) => {
  test.slow();
  const server = await Restartable.start();
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "tether-e2e-profile-"));
  const launchOptions = test.info().project.use.launchOptions ?? {};
  const launch = (offline: boolean) =>
    chromium.launchPersistentContext(profile, { ...launchOptions, baseURL: server.url, offline });
  try {
    const first = await launch(false);
    const page = first.pages()[0] ?? (await first.newPage());
    watchErrors(page, errors, ALLOWED);
    const id = freshListId();
    await page.goto(`/l/${id}`);
    await hydrated(page);
    await addTodos(page, "before");
    await settled(page);
    await offlineReady(page);
    await goOffline(first, server);
    await addTodos(page, "while offline");
    await expect(pending(page)).toHaveAttribute("data-count", "1");
    await first.close();

    const again = await launch(true);
    const reopened = again.pages()[0] ?? (await again.newPage());
    watchErrors(reopened, errors, ALLOWED);
    await reopened.goto(`/l/${id}`);
    // A browser just started offline takes its time to start the page (1-2 s here
    // on a quiet machine, more when the other worker is busy): the same allowance
    // as every other page gets to hydrate, then the write is there at once.
    await hydrated(reopened);
    await expect(titles(reopened)).toHaveText(["before", "while offline"]);
    await expect(pending(reopened)).toHaveAttribute("data-count", "1", { timeout: 2_000 });
    await expect(status(reopened)).toHaveAttribute("data-state", "offline");

    await comeBack(again, server);
    const back = Date.now();
    await expect(pending(reopened)).toHaveAttribute("data-count", "0", { timeout: 5_000 });
    console.log(`pushed ${Date.now() - back} ms after coming back online`);
    expect(await onServer(browser, server, id)).toEqual(["before", "while offline"]);
    await again.close();
  } finally {
    await server.remove();
    fs.rmSync(profile, { recursive: true, force: true });
  }
});

test("a list made offline from the home page reaches the server when back online", async ({ browser, errors }) => {
  test.slow();
  const server = await Restartable.start();
  try {
    const page = await pageOn(browser, server, errors);
    await page.goto("/");
    await expect(page.locator(".server-status")).toContainText("Server online", { timeout: 15_000 });
    await offlineReady(page);

    await goOffline(page.context(), server);
    await page.reload();
    await expect(page.locator("h1")).toHaveText("Tether");
    await page.locator("a.new-list").click();
    await expect(page).toHaveURL(/\/l\/[0-9a-f-]{36}$/);
    const id = page.url().split("/l/")[1];
    await addTodos(page, "made offline");
    await expect(pending(page)).toHaveAttribute("data-count", "1");
    // It is this device's list now: it reloads offline, and the home page lists it.
    await page.reload();
    await expect(titles(page)).toHaveText(["made offline"]);
    await page.goto("/");
    const entry = page.locator(`.your-lists li[data-uid="${id}"]`);
    await expect(entry.locator(".open-count")).toHaveText("1 open item");
    await expect(entry.locator(".pending-count")).toHaveText("1 change not sent yet");
    await entry.locator("a").click();

    await comeBack(page.context(), server);
    await settled(page);
    expect(await onServer(browser, server, id)).toEqual(["made offline"]);
    await page.goto("/");
    await expect(entry.locator(".pending-count")).toHaveAttribute("data-count", "0");
    await page.context().close();
  } finally {
    await server.remove();
  }
});

test("a list never seen here says so offline, and loads by itself when the server is back", async ({
  browser,
  errors,
}) => {
  test.slow();
  const server = await Restartable.start();
  try {
    // Somebody else's list, on the server only.
    const elsewhere = await pageOn(browser, server, errors);
    const id = freshListId();
    await elsewhere.goto(`/l/${id}`);
    await hydrated(elsewhere);
    await addTodos(elsewhere, "from elsewhere");
    await settled(elsewhere);
    await elsewhere.context().close();

    const page = await pageOn(browser, server, errors);
    await page.goto("/");
    await offlineReady(page);
    await goOffline(page.context(), server);
    await page.goto(`/l/${id}`);
    await expect(page.locator(".not-on-device h1")).toHaveText("This list is not on this device yet");

    await comeBack(page.context(), server);
    await expect(titles(page)).toHaveText(["from elsewhere"], { timeout: 15_000 });
    await expect(status(page)).toHaveAttribute("data-state", "online", { timeout: 15_000 });
    await page.context().close();
  } finally {
    await server.remove();
  }
});

test("forgetting a list asks first when it has writes not sent yet", async ({ browser, errors }) => {
  const server = await Restartable.start();
  try {
    const page = await pageOn(browser, server, errors);
    const saved = freshListId();
    await page.goto(`/l/${saved}`);
    await hydrated(page);
    await addTodos(page, "saved");
    await settled(page);
    const unsent = freshListId();
    await page.goto(`/l/${unsent}`);
    await hydrated(page);
    await offlineReady(page);
    await page.context().setOffline(true);
    await addTodos(page, "unsent");
    await expect(pending(page)).toHaveAttribute("data-count", "1");

    await page.goto("/");
    const lists = page.locator(".your-lists > li");
    await expect(lists).toHaveCount(2);
    // Newest first.
    await expect(lists.first()).toHaveAttribute("data-uid", unsent);
    // Nothing pending: forgotten at once.
    await page.locator(`.your-lists li[data-uid="${saved}"] button.forget`).click();
    await expect(lists).toHaveCount(1);
    // Pending: a warning first; "keep it" keeps it.
    const entry = page.locator(`.your-lists li[data-uid="${unsent}"]`);
    await entry.locator("button.forget").click();
    await expect(entry.locator(".forget-warning")).toContainText("1 change made here has not reached the server yet");
    await entry.locator("button.keep").click();
    await expect(entry.locator(".forget-warning")).toHaveCount(0);
    await entry.locator("button.forget").click();
    await entry.locator("button.forget-anyway").click();
    await expect(lists).toHaveCount(0);
    const left = await page.evaluate(() => Object.keys(localStorage).filter((k) => k.includes("outbox") || k.includes("state:")));
    expect(left).toEqual([]);
    await page.context().close();
  } finally {
    await server.remove();
  }
});

test("a new build replaces the old shell: the next load runs the new files, the old cache is deleted", async ({
  browser,
  errors,
}) => {
  test.slow();
  // The same bundle with a changed js: another build, as a rebuild gives.
  const site = fs.mkdtempSync(path.join(os.tmpdir(), "tether-e2e-site-"));
  fs.cpSync(path.join(repo, "target", "site"), site, { recursive: true });
  for (const file of fs.readdirSync(path.join(site, "pkg"))) {
    if (file.endsWith(".br") || file.endsWith(".gz")) fs.rmSync(path.join(site, "pkg", file));
  }
  fs.appendFileSync(path.join(site, "pkg", "tether.js"), '\nglobalThis.tetherTestBuild = "new";\n');
  const server = await Restartable.start();
  try {
    const page = await pageOn(browser, server, errors);
    const id = freshListId();
    await page.goto(`/l/${id}`);
    await hydrated(page);
    await addTodos(page, "kept across builds");
    await settled(page);
    await offlineReady(page);
    const oldBuild = await buildOf(page);
    expect(await page.evaluate(() => (globalThis as { tetherTestBuild?: string }).tetherTestBuild)).toBeUndefined();

    await server.stop();
    await server.start({ TETHER_SITE_ROOT: site });
    await page.reload();
    await hydrated(page);
    const newBuild = await buildOf(page);
    expect(newBuild).not.toEqual(oldBuild);
    expect(await page.evaluate(() => (globalThis as { tetherTestBuild?: string }).tetherTestBuild)).toBe("new");
    await expect(titles(page)).toHaveText(["kept across builds"]);
    await expect.poll(() => cacheNames(page), { timeout: 30_000 }).toEqual([`tether-shell-${newBuild}`]);

    // Offline, the shell is the new build's.
    await goOffline(page.context(), server);
    await page.reload();
    await expect(titles(page)).toHaveText(["kept across builds"]);
    expect(await buildOf(page)).toEqual(newBuild);
    expect(await page.evaluate(() => (globalThis as { tetherTestBuild?: string }).tetherTestBuild)).toBe("new");
    await page.context().close();
  } finally {
    await server.remove();
    fs.rmSync(site, { recursive: true, force: true });
  }
});
