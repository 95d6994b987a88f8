// The list view follows the TodoMVC app spec: markup and behaviour, one test per
// behaviour, each on a fresh list (a fresh UID: every list starts empty).
import { test, expect, openList, addTodos, titles, settled, freshListId, hydrated } from "./fixtures";

const items = (page: import("@playwright/test").Page) => page.locator(".todo-list li.todo");

test.describe("markup", () => {
  test("has the TodoMVC structure", async ({ page }) => {
    await openList(page);
    await expect(page.locator("section.todoapp h1")).toBeVisible();
    const input = page.locator("section.todoapp input.new-todo");
    await expect(input).toHaveAttribute("placeholder", "What needs to be done?");
    await expect(input).toHaveAttribute("autofocus", "");
    await expect(input).toBeFocused();
    await addTodos(page, "one");
    await expect(page.locator("main.main input#toggle-all.toggle-all")).toHaveCount(1);
    await expect(page.locator('main.main label[for="toggle-all"]')).toHaveText("Mark all as complete");
    const li = page.locator("main.main ul.todo-list li").first();
    await expect(li.locator("div.view input.toggle")).toHaveCount(1);
    await expect(li.locator("div.view label")).toHaveText("one");
    await expect(li.locator("div.view button.destroy")).toHaveCount(1);
    await expect(li.locator("input.edit")).toHaveCount(1);
    await expect(page.locator("footer.footer span.todo-count")).toHaveCount(1);
    await expect(page.locator("footer.footer ul.filters a")).toHaveText(["All", "Active", "Completed"]);
    await expect(page.locator("footer.footer button.clear-completed")).toHaveCount(1);
  });
});

test("every list starts empty: main and footer are hidden", async ({ page }) => {
  await openList(page);
  await expect(page.locator(".todo-list li")).toHaveCount(0);
  await expect(page.locator("main.main")).toBeHidden();
  await expect(page.locator("footer.footer")).toBeHidden();
  await addTodos(page, "x");
  await expect(page.locator("main.main")).toBeVisible();
  await expect(page.locator("footer.footer")).toBeVisible();
  await items(page).first().hover();
  await items(page).first().locator(".destroy").click();
  await expect(page.locator("main.main")).toBeHidden();
  await expect(page.locator("footer.footer")).toBeHidden();
});

test("Enter adds a trimmed todo and clears the input; empty is ignored", async ({ page }) => {
  await openList(page);
  const input = page.locator(".new-todo");
  await input.fill("   buy milk   ");
  await input.press("Enter");
  await expect(titles(page)).toHaveText(["buy milk"]);
  await expect(input).toHaveValue("");
  await input.fill("    ");
  await input.press("Enter");
  await expect(titles(page)).toHaveCount(1);
});

test("new items go to the bottom", async ({ page }) => {
  await openList(page);
  await addTodos(page, "first", "second", "third");
  await expect(titles(page)).toHaveText(["first", "second", "third"]);
});

test("the counter says how many items are left, with the right plural", async ({ page }) => {
  await openList(page);
  const count = page.locator(".todo-count");
  await addTodos(page, "a");
  await expect(count).toHaveText("1 item left");
  await expect(count.locator("strong")).toHaveText("1");
  await addTodos(page, "b");
  await expect(count).toHaveText("2 items left");
  await expect(count.locator("strong")).toHaveText("2");
  await items(page).first().locator(".toggle").check();
  await expect(count).toHaveText("1 item left");
});

test("toggling an item marks it completed", async ({ page }) => {
  await openList(page);
  await addTodos(page, "a", "b");
  const first = items(page).first();
  await first.locator(".toggle").check();
  await expect(first).toHaveClass(/completed/);
  await expect(first.locator(".toggle")).toBeChecked();
  await first.locator(".toggle").uncheck();
  await expect(first).not.toHaveClass(/completed/);
});

test("double-click edits; Enter saves trimmed", async ({ page }) => {
  await openList(page);
  await addTodos(page, "a", "b");
  const first = items(page).first();
  await first.locator("label").dblclick();
  await expect(first).toHaveClass(/editing/);
  const edit = first.locator(".edit");
  await expect(edit).toBeFocused();
  await expect(edit).toHaveValue("a");
  await edit.fill("  renamed  ");
  await edit.press("Enter");
  await expect(first).not.toHaveClass(/editing/);
  await expect(titles(page)).toHaveText(["renamed", "b"]);
});

test("blur saves an edit", async ({ page }) => {
  await openList(page);
  await addTodos(page, "a", "b");
  const first = items(page).first();
  await first.locator("label").dblclick();
  await first.locator(".edit").fill("blurred");
  await page.locator(".new-todo").click(); // moves focus away
  await expect(titles(page)).toHaveText(["blurred", "b"]);
});

test("saving an empty title deletes the item", async ({ page }) => {
  await openList(page);
  await addTodos(page, "a", "b");
  const first = items(page).first();
  await first.locator("label").dblclick();
  await first.locator(".edit").fill("   ");
  await first.locator(".edit").press("Enter");
  await expect(titles(page)).toHaveText(["b"]);
});

test("Escape cancels an edit, and the blur after it does not save", async ({ page }) => {
  await openList(page);
  await addTodos(page, "keep me", "b");
  const first = items(page).first();
  await first.locator("label").dblclick();
  await first.locator(".edit").fill("changed");
  await first.locator(".edit").press("Escape");
  await expect(first).not.toHaveClass(/editing/);
  await page.locator(".new-todo").click(); // a blur now must not save
  await expect(titles(page)).toHaveText(["keep me", "b"]);
  await settled(page);
  await page.reload();
  await expect(titles(page)).toHaveText(["keep me", "b"]);
});

test("the destroy button removes an item", async ({ page }) => {
  await openList(page);
  await addTodos(page, "a", "b", "c");
  const second = items(page).nth(1);
  await second.hover();
  await second.locator(".destroy").click();
  await expect(titles(page)).toHaveText(["a", "c"]);
});

test("toggle-all sets every item and follows them as they change", async ({ page }) => {
  await openList(page);
  await addTodos(page, "a", "b", "c");
  const toggleAll = page.locator("#toggle-all");
  await expect(toggleAll).not.toBeChecked();
  await page.locator('label[for="toggle-all"]').click();
  await expect(items(page)).toHaveClass([/completed/, /completed/, /completed/]);
  await expect(toggleAll).toBeChecked();
  // Follows the items: unchecking one unchecks toggle-all…
  await items(page).nth(1).locator(".toggle").uncheck();
  await expect(toggleAll).not.toBeChecked();
  // …and checking it again checks toggle-all.
  await items(page).nth(1).locator(".toggle").check();
  await expect(toggleAll).toBeChecked();
  // Clicking again clears every item.
  await page.locator('label[for="toggle-all"]').click();
  await expect(page.locator(".todo-list li.todo.completed")).toHaveCount(0);
});

test("clear completed removes completed items and is hidden when there are none", async ({ page }) => {
  await openList(page);
  await addTodos(page, "a", "b", "c");
  const clear = page.locator(".clear-completed");
  await expect(clear).toBeHidden();
  await items(page).nth(0).locator(".toggle").check();
  await items(page).nth(2).locator(".toggle").check();
  await expect(clear).toBeVisible();
  await clear.click();
  await expect(titles(page)).toHaveText(["b"]);
  await expect(clear).toBeHidden();
});

test("filters are real links; the current one is selected", async ({ page }) => {
  const id = await openList(page);
  await addTodos(page, "active one", "done one");
  await items(page).nth(1).locator(".toggle").check();
  const filters = page.locator(".filters a");
  await expect(filters.nth(0)).toHaveAttribute("href", `/l/${id}`);
  await expect(filters.nth(1)).toHaveAttribute("href", `/l/${id}/active`);
  await expect(filters.nth(2)).toHaveAttribute("href", `/l/${id}/completed`);
  await expect(filters.nth(0)).toHaveClass(/selected/);

  await filters.nth(1).click();
  await expect(page).toHaveURL(new RegExp(`/l/${id}/active$`));
  await expect(titles(page)).toHaveText(["active one"]);
  await expect(filters.nth(1)).toHaveClass(/selected/);
  await expect(filters.nth(0)).not.toHaveClass(/selected/);

  await filters.nth(2).click();
  await expect(titles(page)).toHaveText(["done one"]);
  await expect(filters.nth(2)).toHaveClass(/selected/);

  await filters.nth(0).click();
  await expect(titles(page)).toHaveText(["active one", "done one"]);
});

test("the filter survives a reload and the back button works", async ({ page }) => {
  const id = await openList(page);
  await addTodos(page, "active one", "done one");
  await items(page).nth(1).locator(".toggle").check();
  await settled(page);
  await page.locator(".filters a", { hasText: "Completed" }).click();
  await expect(titles(page)).toHaveText(["done one"]);
  await page.reload();
  await hydrated(page);
  await expect(titles(page)).toHaveText(["done one"]);
  await expect(page.locator(".filters a.selected")).toHaveText("Completed");
  await page.locator(".filters a", { hasText: "Active" }).click();
  await expect(titles(page)).toHaveText(["active one"]);
  await page.goBack();
  await expect(page).toHaveURL(new RegExp(`/l/${id}/completed$`));
  await expect(titles(page)).toHaveText(["done one"]);
  await page.goBack();
  await expect(page).toHaveURL(new RegExp(`/l/${id}$`));
  await expect(titles(page)).toHaveText(["active one", "done one"]);
});

test("completing an item in the Active view takes it out of that view", async ({ page }) => {
  await openList(page, freshListId(), "active");
  await addTodos(page, "a", "b");
  await expect(titles(page)).toHaveText(["a", "b"]);
  // click, not check: the checkbox leaves the page as soon as it is checked
  await items(page).first().locator(".toggle").click();
  await expect(titles(page)).toHaveText(["b"]);
  await page.locator(".filters a", { hasText: "Completed" }).click();
  await expect(titles(page)).toHaveText(["a"]);
});
