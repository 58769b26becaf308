/* The layout designer (metacrm/studio/layouts): drag an item (a field, a related list, a list
   column) between the lists of its kind; each placed list's hidden input is rewritten in the
   new order, so "Review changes" posts what the page shows. Every button still posts the form
   (the keyboard and no-script path, done by the server); the preview width switches here
   without a round trip, and the preview is redrawn after a drop or a changed section title. */
(function () {
  "use strict";
  var form = document.getElementById("layout-form");
  if (!form) return;
  var dragged = null;

  function sync() {
    form.querySelectorAll(".ld-drop").forEach(function (list) {
      var items = list.querySelectorAll(".ld-item");
      list.classList.toggle("is-empty", items.length === 0);
      var input = list.dataset.input && document.getElementById(list.dataset.input);
      if (input) {
        input.value = Array.prototype.map.call(items, function (item) { return item.dataset.name; }).join(",");
      }
    });
    refresh();
  }

  // The preview follows the page: the form is posted as "Refresh" would post it (nothing is
  // saved) and the preview of the answer replaces this one; if that fails, a note says so.
  var timer = null;
  function refresh() {
    clearTimeout(timer);
    timer = setTimeout(function () {
      var data = new FormData(form);
      data.set("_op", "w.refresh");
      var stale = document.getElementById("preview-stale");
      fetch(form.action, {method: "POST", body: data, credentials: "same-origin"})
        .then(function (response) {
          if (!response.ok) throw new Error(String(response.status));
          return response.text();
        })
        .then(function (text) {
          var fresh = new DOMParser().parseFromString(text, "text/html");
          var body = fresh.getElementById("ld-preview");
          var note = fresh.getElementById("preview-note");
          var mine = document.getElementById("ld-preview");
          if (!body || !mine) throw new Error("no preview");
          mine.innerHTML = body.innerHTML;
          if (note) document.getElementById("preview-note").textContent = note.textContent;
          if (stale) stale.hidden = true;
        })
        .catch(function () { if (stale) stale.hidden = false; });
    }, 250);
  }
  form.addEventListener("change", function (event) {
    var name = event.target.name || "";
    if (/^sec\.\d+\.(label_en|label_zh|columns)$/.test(name)) refresh();
  });

  function after(list, y) {
    var items = Array.prototype.filter.call(list.querySelectorAll(".ld-item"), function (i) { return i !== dragged; });
    for (var k = 0; k < items.length; k++) {
      var box = items[k].getBoundingClientRect();
      if (y < box.top + box.height / 2) return items[k];
    }
    return null;
  }

  form.addEventListener("dragstart", function (event) {
    var item = event.target.closest && event.target.closest(".ld-item");
    if (!item) return;
    dragged = item;
    item.classList.add("dragging");
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", item.dataset.name);
  });
  form.addEventListener("dragend", function () {
    if (dragged) dragged.classList.remove("dragging");
    form.querySelectorAll(".ld-drop.is-over").forEach(function (l) { l.classList.remove("is-over"); });
    dragged = null;
  });
  form.addEventListener("dragover", function (event) {
    var list = event.target.closest && event.target.closest(".ld-drop");
    if (!list || !dragged || list.dataset.kind !== dragged.dataset.kind) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "move";
    form.querySelectorAll(".ld-drop.is-over").forEach(function (l) { if (l !== list) l.classList.remove("is-over"); });
    list.classList.add("is-over");
  });
  form.addEventListener("drop", function (event) {
    var list = event.target.closest && event.target.closest(".ld-drop");
    if (!list || !dragged || list.dataset.kind !== dragged.dataset.kind) return;
    event.preventDefault();
    list.classList.remove("is-over");
    var before = after(list, event.clientY);
    list.insertBefore(dragged, before);
    var dest = dragged.querySelector(".ld-dest");
    var section = list.closest(".ld-section");
    if (dest) dest.value = section ? section.dataset.index : "";
    sync();
    dragged.focus();
  });

  // The preview width: a toggle here, a post without script.
  var preview = document.getElementById("ld-preview");
  var width = document.getElementById("preview-width");
  ["desktop", "phone"].forEach(function (name) {
    var button = document.getElementById("preview-" + name);
    if (!button || !preview) return;
    button.addEventListener("click", function (event) {
      event.preventDefault();
      preview.classList.remove("is-desktop", "is-phone");
      preview.classList.add("is-" + name);
      if (width) width.value = name;
      ["desktop", "phone"].forEach(function (other) {
        var b = document.getElementById("preview-" + other);
        b.classList.toggle("is-on", other === name);
        b.setAttribute("aria-pressed", other === name ? "true" : "false");
      });
    });
  });
})();
