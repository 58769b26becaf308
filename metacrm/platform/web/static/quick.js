/* Inline edit, selection and mass-action jobs (metacrm/platform/web/quick/).
   Inline edit: a pencil (or a double-click) on a cell or field marked data-inline fetches the
   field's input from the server and posts it back with the version the page showed; the value
   changes only when the server saved it. A stale version or a lock puts the stored value back
   with the reason beside it; a validation error stays beside the input. Without script the page
   keeps its plain edit form and these elements do nothing. */
(function () {
  "use strict";

  function container(cell) { return cell.closest("[data-version]"); }

  function failedText(cell) {
    var box = cell.closest("[data-inline-failed]");
    return box ? box.getAttribute("data-inline-failed") : "";
  }

  function addPencil(cell) {
    if (cell.querySelector(":scope > .inline-pencil")) return;
    var button = document.createElement("button");
    button.type = "button";
    button.className = "inline-pencil";
    button.setAttribute("aria-label", cell.getAttribute("data-inline-label") || "");
    button.title = cell.getAttribute("data-inline-label") || "";
    // the pencil is CSS content (app.css), so the field's text stays the value alone
    cell.appendChild(button);
  }

  function note(cell, text) {
    var old = cell.querySelector(".inline-note");
    if (old) old.remove();
    if (!text) return;
    var p = document.createElement("p");
    p.className = "inline-note field-error";
    p.setAttribute("role", "alert");
    p.textContent = text;
    cell.appendChild(p);
  }

  function close(cell, html) {
    cell.innerHTML = cell._inlineOriginal;
    delete cell._inlineOriginal;
    cell.classList.remove("inline-editing");
    if (html != null) {
      var value = cell.querySelector(".inline-value");
      if (value) value.innerHTML = html;
    }
    addPencil(cell);
  }

  function open(cell) {
    if (cell._inlineOriginal != null) return;
    note(cell, "");
    cell._inlineOriginal = cell.innerHTML;
    cell.classList.add("inline-editing", "inline-loading");
    fetch(cell.getAttribute("data-inline"), {credentials: "same-origin", headers: {"X-Requested-With": "fetch"}})
      .then(function (response) {
        if (response.redirected) { window.location.href = response.url; return {error: failedText(cell)}; }
        if (response.ok) return response.text().then(function (html) { return {html: html}; });
        return response.json().then(function (data) { return {error: data.error || failedText(cell)}; });
      })
      .then(function (result) {
        cell.classList.remove("inline-loading");
        if (result.error) { close(cell); note(cell, result.error); return; }
        cell.innerHTML = result.html;
        var form = cell.querySelector("form.inline-edit");
        var box = container(cell);
        if (box && form) form.querySelector("input[name=_version]").value = box.getAttribute("data-version");
        if (window.metacrmLookup) form.querySelectorAll(".lookup[data-targets]").forEach(window.metacrmLookup);
        var input = form.querySelector("input:not([type=hidden]), select, textarea");
        if (input) input.focus();
      })
      .catch(function () { cell.classList.remove("inline-loading"); close(cell); note(cell, failedText(cell)); });
  }

  function save(form) {
    var cell = form.closest("[data-inline]");
    var error = form.querySelector(".inline-error");
    form.classList.add("inline-saving");
    fetch(form.action, {method: "POST", body: new FormData(form), credentials: "same-origin",
                        headers: {"X-Requested-With": "fetch", "Accept": "application/json"}})
      .then(function (response) { return response.json(); })
      .then(function (data) {
        form.classList.remove("inline-saving");
        var box = container(cell);
        if (data.version != null && box) {
          box.setAttribute("data-version", data.version);
          // the record's other forms on this page (the stage path) post the version they show
          if (box.classList.contains("detail-layout")) {
            document.querySelectorAll("#stage-path input[name=version]").forEach(function (input) {
              input.value = data.version;
            });
          }
        }
        if (data.ok) {
          close(cell, data.html);
          cell.classList.add("inline-saved");
          window.setTimeout(function () { cell.classList.remove("inline-saved"); }, 1500);
        } else if (data.field_error) {
          error.textContent = data.error;
          error.hidden = false;
          form.querySelectorAll("input, select, textarea").forEach(function (el) {
            if (el.name && el.name.charAt(0) !== "_") el.setAttribute("aria-invalid", "true");
          });
        } else {
          close(cell, data.html);
          note(cell, data.error || failedText(cell));
        }
      })
      .catch(function () {
        form.classList.remove("inline-saving");
        error.textContent = failedText(cell);
        error.hidden = false;
      });
  }

  document.querySelectorAll("[data-inline]").forEach(addPencil);
  document.addEventListener("click", function (event) {
    var pencil = event.target.closest && event.target.closest(".inline-pencil");
    if (pencil) { event.preventDefault(); open(pencil.closest("[data-inline]")); return; }
    var cancel = event.target.closest && event.target.closest(".inline-cancel");
    if (cancel) { event.preventDefault(); close(cancel.closest("[data-inline]")); }
  });
  document.addEventListener("dblclick", function (event) {
    var cell = event.target.closest && event.target.closest("[data-inline]");
    if (!cell || event.target.closest("a, form")) return;
    open(cell);
  });
  document.addEventListener("submit", function (event) {
    var form = event.target.closest && event.target.closest("form.inline-edit");
    if (!form) return;
    event.preventDefault();
    save(form);
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    var form = event.target.closest && event.target.closest("form.inline-edit");
    if (form) close(form.closest("[data-inline]"));
  });

  /* Selection: "select the page" ticks every row box. */
  var page = document.getElementById("mass-page");
  if (page) {
    page.hidden = false;
    page.addEventListener("change", function () {
      document.querySelectorAll("input.mass-row").forEach(function (box) { box.checked = page.checked; });
    });
  }

  /* The mass page: choosing the field shows its input. */
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () {
      var form = select.form;
      form.action = select.getAttribute("data-autosubmit");
      form.submit();
    });
  });

  /* A running mass job: poll its progress, reload when it ends. */
  var progress = document.getElementById("mass-progress");
  if (progress && (progress.dataset.status === "queued" || progress.dataset.status === "running")) {
    var poll = function () {
      fetch(progress.dataset.jobUrl, {credentials: "same-origin"})
        .then(function (r) { return r.json(); })
        .then(function (job) {
          var bar = document.getElementById("mass-bar");
          bar.max = job.total || 1;
          bar.value = job.done;
          bar.textContent = job.percent_text;
          document.getElementById("mass-counts").textContent = job.counts_text;
          document.getElementById("mass-status").textContent = job.status_text;
          if (job.status === "done" || job.status === "failed") { window.location.reload(); return; }
          window.setTimeout(poll, 1000);
        })
        .catch(function () { window.setTimeout(poll, 3000); });
    };
    window.setTimeout(poll, 500);
  }
})();
