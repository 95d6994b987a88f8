// Tether's service worker: keeps the app's shell of one build, so the lists this
// device has opened open with no network and no server. The server serves it at
// /sw.js with its build's id and files filled in (src/server/shell.rs); what works
// offline is in docs/RELIABILITY.md, "Offline".
//
// * Its cache is named after the build. A new build is a new script: it keeps the
//   new build's files, takes over at once (for the next page load) and deletes the
//   older caches. It keeps a file only if the server says it is of this build (the
//   build header).
// * Pages: network first, exactly as without it. Only when the server cannot be
//   reached (or a proxy says it is down: 502, 503, 504) does the shell page answer;
//   it starts the app from this device's copies.
// * The build's own files (their addresses carry the build id): from the cache.
// * /api/* and everything else: not touched (straight to the network). Its answers
//   are never kept: the lists' copies live in localStorage, written by the app.
"use strict";

const BUILD = __BUILD__;
const SHELL = __SHELL__;
const KEPT = __KEPT__;
const BUILD_HEADER = __BUILD_HEADER__;
const PREFIX = "tether-shell-";
const CACHE = PREFIX + BUILD;

self.addEventListener("install", (event) => {
  // Where the browser can route requests itself, /api/* never wakes this worker.
  if (event.addRoutes) {
    event
      .addRoutes([{ condition: { urlPattern: new URLPattern({ pathname: "/api/*" }) }, source: "network" }])
      .catch(() => {});
  }
  event.waitUntil(keepBuild().then(() => self.skipWaiting()));
});

/** Fetches and keeps every file of this build, or none (the install fails). */
async function keepBuild() {
  const cache = await caches.open(CACHE);
  try {
    await Promise.all(
      KEPT.map(async (url) => {
        // An address that names the build may come from the browser's HTTP cache
        // (the page has just fetched it); any other is asked of the server again.
        const response = await fetch(url, { cache: url.includes("?v=") ? "default" : "no-cache" });
        if (!response.ok || response.headers.get(BUILD_HEADER) !== BUILD) {
          throw new Error(`${url} is not of build ${BUILD}`);
        }
        await cache.put(url, response);
      }),
    );
  } catch (error) {
    await caches.delete(CACHE);
    throw error;
  }
}

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name.startsWith(PREFIX) && name !== CACHE) await caches.delete(name);
      }
      if (self.registration.navigationPreload) await self.registration.navigationPreload.enable();
      // No clients.claim(): pages already open stay as they are (uncontrolled, their
      // requests untouched); the worker answers from the next page load on.
    })(),
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin || url.pathname.startsWith("/api/")) return;
  if (request.mode === "navigate") {
    event.respondWith(page(event));
  } else if (KEPT.includes(url.pathname + url.search)) {
    event.respondWith(kept(request));
  }
});

const SERVER_DOWN = [502, 503, 504];

/** A page: the server's, or the shell when the server cannot be reached. */
async function page(event) {
  try {
    const response = (await event.preloadResponse) ?? (await fetch(event.request));
    if (!SERVER_DOWN.includes(response.status)) return response;
    return (await caches.match(SHELL, { cacheName: CACHE })) ?? response;
  } catch (error) {
    const shell = await caches.match(SHELL, { cacheName: CACHE });
    if (shell) return shell;
    throw error;
  }
}

/** A file of this build: kept, or fetched if it is not (yet). */
async function kept(request) {
  return (await caches.match(request, { cacheName: CACHE })) ?? fetch(request);
}
