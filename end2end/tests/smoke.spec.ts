// The foundation works: pages render on the server, hydrate without errors, a
// server function answers the browser, and bad addresses get proper error pages.
import { test, expect, hydrated, freshListId } from "./fixtures";

test("the home page renders and hydrates without console errors", async ({ page, errors }) => {
  const response = await page.goto("/");
  expect(response?.status()).toBe(200);
  await expect(page.locator("h1")).toHaveText("Tether");
  await expect(page.locator("a.new-list")).toBeVisible();
  // The ping server function is called from the browser after hydration.
  await expect(page.locator(".server-status")).toContainText("Server online", { timeout: 15_000 });
  expect(errors).toEqual([]);
});

test("a server function round trip works from the browser", async ({ page, errors }) => {
  await page.goto("/");
  await expect(page.locator(".server-status")).toContainText("Server online", { timeout: 15_000 });
  // And directly, as another client would call it.
  const answer = await page.evaluate(async () => {
    const res = await fetch("/api/ping", { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    return { status: res.status, body: await res.json() };
  });
  expect(answer.status).toBe(200);
  expect(answer.body.name).toBe("tether");
  expect(errors).toEqual([]);
});

test("a list page renders and hydrates", async ({ page, errors }) => {
  const id = freshListId();
  const response = await page.goto(`/l/${id}`);
  expect(response?.status()).toBe(200);
  await expect(page.locator("section.todoapp")).toBeVisible();
  await hydrated(page);
  expect(errors).toEqual([]);
});

test.describe("error pages", () => {
  // The browser logs the page's own 400/404 status as a console error.
  test.use({ allowErrors: /status of (400|404)/ });

  test("/l/not-a-uid shows the 400 page", async ({ page }) => {
    const response = await page.goto("/l/not-a-uid");
    expect(response?.status()).toBe(400);
    await expect(page.locator(".error-page")).toHaveAttribute("data-status", "400");
    await expect(page.locator(".error-page h1")).toContainText("Bad list link");
  });

  test("an unknown route shows the 404 page", async ({ page }) => {
    const response = await page.goto("/no/such/page");
    expect(response?.status()).toBe(404);
    await expect(page.locator(".error-page")).toHaveAttribute("data-status", "404");
    const filter = await page.goto(`/l/${freshListId()}/bogus`);
    expect(filter?.status()).toBe(404);
  });
});

test("pages carry a Content-Security-Policy and security headers", async ({ page }) => {
  const response = await page.goto("/");
  const headers = response!.headers();
  expect(headers["content-security-policy"]).toContain("script-src 'self'");
  expect(headers["x-content-type-options"]).toBe("nosniff");
  expect(headers["x-frame-options"]).toBe("DENY");
});
