// Seeding lists from outside, over the documented protocol (docs/PROTOCOL.md "Push"
// and "Pull"): what another client elsewhere would have written. Used by the specs
// and by the browser benchmarks.
import { expect } from "@playwright/test";
import { randomUUID } from "node:crypto";

/** A valid order key for the n-th item: integer part of three base-62 digits. */
export function orderKey(n: number): string {
  const digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  return "c" + digits[Math.floor(n / 3844) % 62] + digits[Math.floor(n / 62) % 62] + digits[n % 62];
}

/** Pushes `count` todo creates ("item 0", "item 1", …, in that order) to `list`. */
export async function pushCreates(baseURL: string, list: string, count: number) {
  const client = randomUUID();
  const ms = Date.now();
  for (let start = 0; start < count; start += 500) {
    const ops = [];
    for (let i = start; i < Math.min(count, start + 500); i++) {
      ops.push({
        client,
        seq: i + 1,
        stamp: `${ms}:${i}:${client}`,
        op: "create",
        node: randomUUID(),
        kind: "todo",
        parent: list,
        order: orderKey(i),
        fields: { title: `item ${i}`, completed: false },
      });
    }
    const res = await fetch(`${baseURL}/api/push`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ list, client, ops }),
    });
    expect(res.status, await res.clone().text()).toBe(200);
  }
}

/** A node's state as a pull page carries it. */
export interface NodeState {
  uid: string;
  fields: Record<string, { v: unknown }>;
  deleted: string | null;
}

/** Every node of `list` the server has, by uid (all pages of a pull from 0). */
export async function pullAll(baseURL: string, list: string): Promise<Map<string, NodeState>> {
  const nodes = new Map<string, NodeState>();
  let after = 0;
  for (;;) {
    const res = await fetch(`${baseURL}/api/pull`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ list, after, limit: null }),
    });
    expect(res.status).toBe(200);
    const page = await res.json();
    for (const change of page.changes) nodes.set(change.node.uid, change.node);
    if (!page.more) return nodes;
    after = page.cursor;
  }
}
