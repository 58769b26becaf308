/* Admin studio → field editor (metacrm/studio/fields): the formula's syntax check and live
   preview (POST to the page's data-check-url; the server answers with errors and positions, and
   the value on the chosen sample record), inserting a function or field at the cursor, the
   autonumber's next value, and switching the roll-up's child object. The page works without it. */
(function () {
  "use strict";
  var form = document.getElementById("field-form");
  if (!form) return;
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute("content") : "";
  var expr = document.getElementById("sf-expression");

  function value(id) {
    var el = document.getElementById(id);
    return el ? el.value : "";
  }

  if (expr) {
    var errorBox = document.getElementById("expression-error");
    var status = document.getElementById("expression-status");
    var preview = document.getElementById("preview-value");
    var field = document.getElementById("expression-field");
    var checkButton = document.getElementById("check-formula");
    var timer = null;
    var serial = 0;
    checkButton.hidden = false;

    function show(answer) {
      var problem = answer.errors && answer.errors[0];
      if (problem) {
        errorBox.textContent = problem.text || problem.message;
        errorBox.hidden = false;
        field.classList.add("has-error");
        expr.setAttribute("aria-invalid", "true");
        status.textContent = "";
        if (problem.offset !== null && problem.offset !== undefined) {
          expr.dataset.errorOffset = problem.offset;
        }
      } else {
        errorBox.textContent = "";
        errorBox.hidden = true;
        field.classList.remove("has-error");
        expr.removeAttribute("aria-invalid");
        status.textContent = answer.message || "";
      }
      if (preview && value("sf-sample")) {
        if (problem) preview.textContent = "";
        else if (answer.value_error) preview.textContent = answer.value_error;
        else if ("text" in answer) preview.textContent = answer.text;
      }
    }

    function check() {
      var mine = ++serial;
      if (!expr.value.trim()) { show({errors: [], message: ""}); return; }
      status.textContent = status.dataset.checking || "";
      fetch(form.dataset.checkUrl, {
        method: "POST", credentials: "same-origin",
        headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
        body: JSON.stringify({expression: expr.value, field: form.dataset.field || "",
                              result_type: value("sf-result_type"), scale: value("sf-scale"),
                              record: value("sf-sample")})
      }).then(function (r) { return r.json(); }).then(function (answer) {
        if (mine === serial) show(answer);
      }).catch(function () { status.textContent = ""; });
    }

    function later() {
      clearTimeout(timer);
      timer = setTimeout(check, 400);
    }

    expr.addEventListener("input", later);
    ["sf-sample", "sf-result_type", "sf-scale"].forEach(function (id) {
      var el = document.getElementById(id);
      if (el) el.addEventListener("change", check);
    });
    checkButton.addEventListener("click", check);
    document.querySelectorAll("[data-insert]").forEach(function (button) {
      button.addEventListener("click", function () {
        var text = button.getAttribute("data-insert");
        var start = expr.selectionStart || 0, end = expr.selectionEnd || 0;
        expr.value = expr.value.slice(0, start) + text + expr.value.slice(end);
        expr.focus();
        expr.selectionStart = expr.selectionEnd = start + text.length;
        later();
      });
    });
    if (expr.value.trim()) check();
  }

  var pattern = document.querySelector("[data-autonumber]");
  var next = document.getElementById("next-number");
  if (pattern && next) {
    var pad = function (n, width) { n = String(n); while (n.length < width) n = "0" + n; return n; };
    pattern.addEventListener("input", function () {
      var now = new Date(), fmt = pattern.value;
      var counters = fmt.match(/\{0+\}/g) || [];
      var ok = counters.length === 1 && !/\{(?!YYYY\}|YY\}|MM\}|DD\}|0+\})/.test(fmt);
      if (!ok) { next.textContent = ""; return; }
      var text = fmt.replace("{YYYY}", pad(now.getUTCFullYear(), 4)).replace("{YY}", pad(now.getUTCFullYear() % 100, 2))
        .replace("{MM}", pad(now.getUTCMonth() + 1, 2)).replace("{DD}", pad(now.getUTCDate(), 2))
        .replace(/\{(0+)\}/, function (_, zeros) { return pad(next.dataset.counter || 1, zeros.length); });
      next.textContent = (next.dataset.template || "{value}").replace("{value}", text);
    });
  }

  var child = document.getElementById("sf-child");
  var refresh = document.getElementById("refresh-child");
  if (child && refresh) {
    refresh.hidden = true;
    child.addEventListener("change", function () { refresh.hidden = false; refresh.click(); });
  }
})();
