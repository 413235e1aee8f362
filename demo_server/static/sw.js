// The page's service worker (served as /sw.js so that it controls the whole page): keeps the
// page, its scripts, the LiteRT.js runtime and WebAssembly, the models and the sample images
// in one cache, so that a visit with the network off still classifies on the device.
//
// - the runtime (/ondevice/lib/<version>/...) and the models (/ondevice/models/<hash>/...)
//   carry their version in the URL: cache first;
// - everything else the page GETs from its own origin: network first, the cache when offline
//   (answers marked no-store are not kept);
// - the API (/api/...) and every non-GET request pass through untouched, never cached.
"use strict";

const CACHE = "skin-spot-check-v1"; // pages.py (CACHE_NAME) gives the page the same name
const SCOPE = new URL(self.registration.scope).pathname;
const VERSIONED = [SCOPE + "ondevice/lib/", SCOPE + "ondevice/models/"];

self.addEventListener("install", () => self.skipWaiting());

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name !== CACHE && name.startsWith("skin-spot-check")) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

async function cacheFirst(request) {
  const cache = await caches.open(CACHE);
  const hit = await cache.match(request);
  if (hit) return hit;
  const response = await fetch(request);
  if (response.ok) await cache.put(request, response.clone());
  return response;
}

async function networkFirst(request) {
  const cache = await caches.open(CACHE);
  try {
    const response = await fetch(request);
    const keep = !/no-store/.test(response.headers.get("Cache-Control") || "");
    if (response.ok && response.type === "basic" && keep) {
      await cache.put(request, response.clone());
    }
    return response;
  } catch (err) {
    // Offline: the cached copy (a page address with another query still gets the page).
    const hit = await cache.match(request, { ignoreSearch: request.mode === "navigate" });
    if (hit) return hit;
    throw err;
  }
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) return;
  if (!url.pathname.startsWith(SCOPE) || url.pathname.startsWith(SCOPE + "api/")) return;
  if (request.headers.has("range")) return;
  const versioned = VERSIONED.some((prefix) => url.pathname.startsWith(prefix));
  event.respondWith(versioned ? cacheFirst(request) : networkFirst(request));
});
