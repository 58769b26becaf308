/* metacrm web UI: small progressive enhancements. Every page works without this file. */
(function () {
  "use strict";

  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var CSRF = csrfMeta ? csrfMeta.getAttribute("content") : "";

  /* Installable app (web/pwa.py): the service worker keeps the shell and the last record pages
     for when the connection drops. Signed out (a public page), the saved record pages go. */
  if ("serviceWorker" in navigator && window.isSecureContext) {
    if (document.body.classList.contains("app")) {
      navigator.serviceWorker.register("/sw.js", {scope: "/"}).catch(function () { /* not offline-capable */ });
    } else if (window.caches) {
      window.caches.delete("metacrm-records-v1");
      if (navigator.serviceWorker.controller) { navigator.serviceWorker.controller.postMessage("forget-records"); }
    }
  }
  document.querySelectorAll("form[action$='/logout']").forEach(function (form) {
    form.addEventListener("submit", function () {
      if (window.caches) { window.caches.delete("metacrm-records-v1"); }
    });
  });

  /* Forms that ask before they act (delete). */
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) {
        event.preventDefault();
      }
    });
  });

  /* Admin "add a field": show options / target only for the types that use them. */
  var typeSwitch = document.querySelector("[data-type-switch]");
  if (typeSwitch) {
    var sync = function () {
      document.querySelectorAll("[data-for-types]").forEach(function (el) {
        var types = el.getAttribute("data-for-types").split(" ");
        el.hidden = types.indexOf(typeSwitch.value) < 0;
      });
    };
    typeSwitch.addEventListener("change", sync);
    sync();
  }

  /* Lookups: a searchable select over /api/v1/records/{target}, with the session cookie
     and the CSRF header. Without JavaScript the field is a plain input for the record id. */
  function debounce(fn, ms) {
    var timer = null;
    return function () {
      var args = arguments;
      clearTimeout(timer);
      timer = setTimeout(function () { fn.apply(null, args); }, ms);
    };
  }

  function search(target, text) {
    var filter = {};
    if (text) {
      if (target.search.length === 1) {
        filter[target.search[0]] = { contains: text };
      } else {
        filter = { any: target.search.map(function (f) { var c = {}; c[f] = { contains: text }; return c; }) };
      }
    }
    var params = new URLSearchParams({ limit: "10", fields: target.search.filter(function (f) { return f !== "id"; }).join(",") });
    if (text) { params.set("filter", JSON.stringify(filter)); }
    if (!params.get("fields")) { params.delete("fields"); }
    return fetch("/api/v1/records/" + encodeURIComponent(target.object) + "?" + params.toString(), {
      credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRF-Token": CSRF }
    }).then(function (response) {
      if (!response.ok) { return []; }
      return response.json().then(function (body) {
        return (body.items || []).map(function (item) {
          var name = target.search.map(function (f) { return item[f]; }).filter(Boolean)[0] || item.id;
          return { id: item.id, name: String(name), object: target.label };
        });
      });
    }).catch(function () { return []; });
  }

  function enhanceLookup(box) {
    var targets;
    try { targets = JSON.parse(box.getAttribute("data-targets") || "[]"); } catch (e) { targets = []; }
    var idInput = box.querySelector(".lookup-id");
    if (!idInput || !targets.length) { return; }
    box.classList.add("enhanced");
    var label = document.querySelector('label[for="' + idInput.id + '"]');
    var text = document.createElement("input");
    text.type = "search";
    text.className = "lookup-text";
    text.autocomplete = "off";
    text.placeholder = box.getAttribute("data-placeholder") || "";
    text.value = box.getAttribute("data-current") || idInput.value;
    text.setAttribute("role", "combobox");
    text.setAttribute("aria-autocomplete", "list");
    text.setAttribute("aria-expanded", "false");
    if (idInput.required) { text.required = true; }
    if (idInput.getAttribute("aria-invalid")) { text.setAttribute("aria-invalid", "true"); }
    var list = document.createElement("ul");
    list.className = "lookup-results";
    list.id = idInput.id + "-results";
    list.setAttribute("role", "listbox");
    list.hidden = true;
    text.setAttribute("aria-controls", list.id);
    var newId = idInput.id;
    idInput.id = newId + "-value";
    idInput.type = "hidden";
    idInput.required = false;
    text.id = newId;
    if (label) { label.setAttribute("for", newId); }
    box.appendChild(text);
    box.appendChild(list);
    var items = [];
    var active = -1;

    function close() { list.hidden = true; text.setAttribute("aria-expanded", "false"); active = -1; }
    function choose(item) {
      idInput.value = item.id;
      text.value = item.name;
      box.setAttribute("data-current", item.name);
      close();
    }
    function render(found) {
      items = found;
      list.innerHTML = "";
      if (!found.length) {
        var none = document.createElement("li");
        none.className = "none";
        none.textContent = box.getAttribute("data-none") || "";
        list.appendChild(none);
      }
      found.forEach(function (item, index) {
        var li = document.createElement("li");
        li.setAttribute("role", "option");
        li.id = list.id + "-" + index;
        li.textContent = item.name;
        if (targets.length > 1) {
          var small = document.createElement("small");
          small.textContent = item.object;
          li.appendChild(small);
        }
        li.addEventListener("mousedown", function (event) { event.preventDefault(); choose(item); });
        list.appendChild(li);
      });
      list.hidden = false;
      text.setAttribute("aria-expanded", "true");
    }
    var run = debounce(function (value) {
      Promise.all(targets.map(function (target) { return search(target, value); })).then(function (results) {
        if (text.value.trim() !== value) { return; }
        render([].concat.apply([], results).slice(0, 12));
      });
    }, 200);
    text.addEventListener("input", function () {
      var value = text.value.trim();
      if (!value) { idInput.value = ""; }
      run(value);
    });
    text.addEventListener("focus", function () { run(text.value.trim() === box.getAttribute("data-current") ? "" : text.value.trim()); });
    text.addEventListener("blur", function () {
      close();
      if (!text.value.trim()) { idInput.value = ""; box.setAttribute("data-current", ""); }
      else if (idInput.value) { text.value = box.getAttribute("data-current") || text.value; }
    });
    text.addEventListener("keydown", function (event) {
      var options = list.querySelectorAll("[role=option]");
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        if (list.hidden) { run(text.value.trim()); return; }
        active = (active + (event.key === "ArrowDown" ? 1 : -1) + options.length) % Math.max(options.length, 1);
        options.forEach(function (o, i) { o.setAttribute("aria-selected", i === active ? "true" : "false"); });
        if (options[active]) { text.setAttribute("aria-activedescendant", options[active].id); }
      } else if (event.key === "Enter" && !list.hidden && active >= 0 && items[active]) {
        event.preventDefault();
        choose(items[active]);
      } else if (event.key === "Escape") {
        close();
      }
    });
  }

  document.querySelectorAll(".lookup[data-targets]").forEach(enhanceLookup);
  window.metacrmLookup = enhanceLookup;  // for inputs added later (inline edit: quick.js)

  /* The header's search box: "/" or Ctrl+K focuses it; typing shows the best matches (the
     search page's own groups, rendered by the server for this user); Enter opens the page. */
  var topSearch = document.getElementById("topsearch-q");
  if (topSearch) {
    var suggestBox = document.getElementById("topsearch-list");
    var suggestTimer = null, suggestSeq = 0;
    document.addEventListener("keydown", function (event) {
      var tag = (event.target.tagName || "").toLowerCase();
      var typing = tag === "input" || tag === "textarea" || tag === "select" || event.target.isContentEditable;
      if ((event.key === "/" && !typing) || (event.key.toLowerCase() === "k" && (event.ctrlKey || event.metaKey))) {
        event.preventDefault();
        topSearch.focus();
        topSearch.select();
      }
    });
    var hideSuggest = function () {
      suggestBox.hidden = true;
      topSearch.setAttribute("aria-expanded", "false");
    };
    topSearch.addEventListener("input", function () {
      clearTimeout(suggestTimer);
      var q = topSearch.value.trim();
      if (q.length < 2) { hideSuggest(); return; }
      suggestTimer = setTimeout(function () {
        var seq = ++suggestSeq;
        fetch(topSearch.getAttribute("data-suggest") + "?partial=1&q=" + encodeURIComponent(q),
              {credentials: "same-origin", headers: {"Accept": "text/html"}})
          .then(function (r) { return r.ok ? r.text() : ""; })
          .then(function (html) {
            if (seq !== suggestSeq) { return; }
            suggestBox.innerHTML = html;
            suggestBox.hidden = !html.trim();
            topSearch.setAttribute("aria-expanded", suggestBox.hidden ? "false" : "true");
          })
          .catch(hideSuggest);
      }, 200);
    });
    topSearch.addEventListener("keydown", function (event) {
      if (event.key === "Escape") { hideSuggest(); }
    });
    document.addEventListener("click", function (event) {
      if (!event.target.closest || !event.target.closest(".topsearch")) { hideSuggest(); }
    });
  }
})();

// Import job progress (imports/templates/imports/job.html): poll GET /api/v1/jobs/<id> each
// second, move the bar and the counts, reload the page once the job has finished. Without JS
// the page has a plain refresh link.
(function () {
  var box = document.getElementById("import-progress");
  if (!box || ["done", "failed"].indexOf(box.getAttribute("data-status")) >= 0) { return; }
  var bar = document.getElementById("import-bar");
  var counts = document.getElementById("import-counts");
  var errors = document.getElementById("import-errors");
  var number = new Intl.NumberFormat(document.documentElement.lang || "en");
  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (_, k) { return number.format(values[k] || 0); });
  }
  function poll() {
    fetch(box.getAttribute("data-job-url"), {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (job) {
        if (!job) { return; }
        var p = job.progress || {};
        bar.max = Math.max(p.total || 0, 1);
        bar.value = p.total ? p.done : 1;
        counts.textContent = fill(box.getAttribute("data-counts"), {done: p.done, total: p.total});
        errors.textContent = fill(box.getAttribute("data-errors"), {errors: p.errors});
        if (job.status === "done" || job.status === "failed") { window.location.reload(); return; }
        window.setTimeout(poll, 1000);
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  }
  window.setTimeout(poll, 500);
})();
