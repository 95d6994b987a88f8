// Presence: two browsers on one list see each other (a count and a badge with
// initials), see which item the other is editing, keep a changed name across a
// reload, and see the other leave when its page closes. Real server and browsers.
import { test, expect, openList, addTodos, settled } from "./fixtures";

test("people on one list see each other, what each edits, and one leave", async ({ page, browser }) => {
  const id = await openList(page);
  await addTodos(page, "Milk", "Bread");
  await settled(page);
  await expect(page.locator(".presence-count")).toHaveText("Only you here");
  await expect(page.locator(".presence .rename")).toHaveText(/^You: Guest \d{4}$/);

  const otherContext = await browser.newContext();
  const other = await otherContext.newPage();
  await openList(other, id);
  await expect(page.locator(".presence .peer")).toHaveCount(1, { timeout: 2_000 });
  await expect(page.locator(".presence-count")).toHaveText("1 other here");
  await expect(other.locator(".presence .peer")).toHaveCount(1, { timeout: 2_000 });

  // The other person names themselves; the first browser shows their initials.
  await other.locator(".presence .rename").click();
  await other.locator(".presence .rename-field").fill("Ada Lovelace");
  await other.locator(".presence .rename-field").press("Enter");
  await expect(other.locator(".presence .rename")).toHaveText("You: Ada Lovelace");
  const ada = page.locator(".presence .peer");
  await expect(ada).toHaveText("AL");
  await expect(ada).toHaveAttribute("title", "Ada Lovelace");

  // Ada edits "Milk": the first browser sees her name on that item, on no other.
  await other.locator(".todo-list li.todo", { hasText: "Milk" }).locator("label").dblclick();
  const milk = page.locator(".todo-list li.todo", { hasText: "Milk" });
  await expect(milk.locator(".editor-marker")).toHaveText("Ada Lovelace is editing");
  await expect(page.locator(".editor-marker")).toHaveCount(1);
  await other.locator(".todo-list li.editing .edit").press("Escape");
  await expect(page.locator(".editor-marker")).toHaveCount(0);

  // The name is kept by the browser.
  await other.reload();
  await expect(other.locator(".presence .rename")).toHaveText("You: Ada Lovelace");
  await expect(ada).toHaveAttribute("title", "Ada Lovelace");

  // Her page closes: she is gone within seconds.
  await otherContext.close();
  await expect(page.locator(".presence .peer")).toHaveCount(0, { timeout: 10_000 });
  await expect(page.locator(".presence-count")).toHaveText("Only you here");
});
