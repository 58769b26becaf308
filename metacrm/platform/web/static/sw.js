/* metacrm service worker (web/pwa.py serves it at /sw.js): the page shell from the cache, and
   the last record pages the user opened when the network is gone, marked as stale. Only GETs of
   this site are handled; forms, the API and downloads always go to the server. */
"use strict";

var SHELL = "metacrm-shell-v2";
var RECORDS = "metacrm-records-v1";
var KEEP = 30; // record pages kept
var SHELL_FILES = ["/static/app.css", "/static/app.js", "/static/favicon.svg", "/offline",
                   "/static/icons/icon.svg", "/static/icons/icon-192.png", "/static/manifest.webmanifest"];
var RECORD_PAGE = /^\/records\/[a-z][a-z0-9_]*\/[0-9a-f]{32}$/;
var WORDS = {
  "en": "Offline — shown as of {time}. Changes cannot be saved until the connection is back.",
  "zh-CN": "离线 — 显示的是 {time} 时的内容。恢复网络前无法保存修改。"
};

self.addEventListener("install", function (event) {
  event.waitUntil(caches.open(SHELL).then(function (cache) { return cache.addAll(SHELL_FILES); })
    .then(function () { return self.skipWaiting(); }));
});

self.addEventListener("activate", function (event) {
  event.waitUntil(caches.keys().then(function (names) {
    return Promise.all(names.filter(function (n) { return n !== SHELL && n !== RECORDS; })
      .map(function (n) { return caches.delete(n); }));
  }).then(function () { return self.clients.claim(); }));
});

function stamped(response) {
  return response.clone().text().then(function (body) {
    var headers = new Headers(response.headers);
    headers.set("X-Metacrm-Saved-At", new Date().toISOString());
    return new Response(body, {status: response.status, statusText: response.statusText, headers: headers});
  });
}

function remember(request, response) {
  return stamped(response).then(function (copy) {
    return caches.open(RECORDS).then(function (cache) {
      return cache.delete(request.url).then(function () { return cache.put(request.url, copy); })
        .then(function () { return cache.keys(); })
        .then(function (keys) {
          // the cache lists in insertion order: drop the oldest beyond KEEP
          return Promise.all(keys.slice(0, Math.max(0, keys.length - KEEP)).map(function (k) { return cache.delete(k); }));
        });
    });
  });
}

function escapeHtml(text) {
  return text.replace(/[&<>"]/g, function (c) { return {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;"}[c]; });
}

function marked(cached) {
  var saved = cached.headers.get("X-Metacrm-Saved-At");
  return cached.text().then(function (body) {
    var lang = (body.match(/<html lang="([^"]+)"/) || [])[1] || "en";
    var words = WORDS[lang] || WORDS.en;
    var time = saved ? new Date(saved).toLocaleString(lang) : "?";
    var banner = '<div class="offline-banner" id="offline-banner" role="status">' +
      escapeHtml(words.replace("{time}", time)) + "</div>";
    body = body.replace(/(<body[^>]*>)/, "$1" + banner).replace("<body", '<body data-offline="1"');
    var headers = new Headers(cached.headers);
    headers.set("Content-Type", "text/html; charset=utf-8");
    return new Response(body, {status: 200, headers: headers});
  });
}

self.addEventListener("fetch", function (event) {
  var request = event.request;
  if (request.method !== "GET") { return; }
  var url = new URL(request.url);
  if (url.origin !== self.location.origin || url.pathname.indexOf("/api/") === 0 ||
      url.pathname.indexOf("/files/") === 0) { return; }
  if (url.pathname.indexOf("/static/") === 0) {
    // the shell: the network first (a new release's files), the cache when offline
    event.respondWith(fetch(request).then(function (response) {
      if (response.ok && SHELL_FILES.indexOf(url.pathname) >= 0) {
        var copy = response.clone();
        caches.open(SHELL).then(function (cache) { cache.put(url.pathname, copy); });
      }
      return response;
    }).catch(function () {
      return caches.match(url.pathname).then(function (hit) { return hit || Response.error(); });
    }));
    return;
  }
  if (request.mode !== "navigate") { return; }
  event.respondWith(fetch(request).then(function (response) {
    var html = (response.headers.get("Content-Type") || "").indexOf("text/html") === 0;
    if (response.ok && html && !response.redirected && RECORD_PAGE.test(url.pathname) && !url.search) {
      event.waitUntil(remember(request, response.clone()));
    }
    return response;
  }).catch(function () {
    return caches.open(RECORDS).then(function (cache) { return cache.match(url.origin + url.pathname); })
      .then(function (hit) {
        if (hit) { return marked(hit); }
        return caches.match("/offline").then(function (page) { return page || Response.error(); });
      });
  }));
});

self.addEventListener("message", function (event) {
  if (event.data === "forget-records") { event.waitUntil(caches.delete(RECORDS)); }
});
