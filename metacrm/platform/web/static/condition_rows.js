/* The simple condition form (templates/_condition_rows.html): add and remove rows, and give each row
   the operators and the value input of the field it names. The form posts normally without this. */
(function () {
  "use strict";

  function setup(box) {
    var prefix = box.getAttribute("data-condrows");
    var list = box.querySelector(".condrows-list");

    function templateFor(name) {
      return box.querySelector('template[data-cond-field="' + name + '"]');
    }

    function renumber() {
      list.querySelectorAll("[data-condrow]").forEach(function (row, i) {
        [["cond-field", "field"], ["cond-op", "op"], ["cond-value", "value"]].forEach(function (pair) {
          var el = row.querySelector("." + pair[0]);
          var label = row.querySelector('label[for="' + el.id + '"]');
          el.name = prefix + "." + i + "." + pair[1];
          el.id = prefix + "-" + i + "-" + pair[1];
          if (label) { label.htmlFor = el.id; }
        });
      });
    }

    function applyField(row) {
      var field = row.querySelector(".cond-field").value;
      var tpl = templateFor(field);
      if (!tpl) { return; }
      var op = row.querySelector(".cond-op");
      var current = op.value;
      op.innerHTML = "";
      tpl.getAttribute("data-ops").split("|").forEach(function (pair) {
        var at = pair.indexOf("=");
        var option = document.createElement("option");
        option.value = pair.slice(0, at);
        option.textContent = pair.slice(at + 1);
        if (option.value === current) { option.selected = true; }
        op.appendChild(option);
      });
      var old = row.querySelector(".cond-value");
      var fresh = tpl.content.firstElementChild.cloneNode(true);
      fresh.id = old.id;
      fresh.name = old.name;
      old.replaceWith(fresh);
      syncValue(row);
    }

    function syncValue(row) {
      var value = row.querySelector(".cond-value");
      value.hidden = row.querySelector(".cond-op").value === "is_null";
    }

    function wire(row) {
      row.querySelector(".cond-field").addEventListener("change", function () { applyField(row); });
      row.querySelector(".cond-op").addEventListener("change", function () { syncValue(row); });
      var remove = row.querySelector("[data-cond-remove]");
      if (!remove) {
        remove = document.createElement("button");
        remove.type = "button";
        remove.className = "btn btn-small cond-remove";
        remove.setAttribute("data-cond-remove", "");
        remove.textContent = box.querySelector("[data-cond-add]").getAttribute("data-remove-label") || "×";
        row.insertBefore(remove, row.querySelector(".field-error"));
      }
      remove.hidden = false;
      remove.addEventListener("click", function () {
        if (list.querySelectorAll("[data-condrow]").length > 1) {
          row.remove();
        } else {
          row.querySelector(".cond-field").value = "";
          row.querySelector(".cond-value").value = "";
        }
        renumber();
      });
      syncValue(row);
    }

    var rows = list.querySelectorAll("[data-condrow]");
    rows.forEach(wire);
    var blank = rows[rows.length - 1];
    var pattern = blank.cloneNode(true);
    var add = box.querySelector("[data-cond-add]");
    add.hidden = false;
    add.addEventListener("click", function () {
      var row = pattern.cloneNode(true);
      row.querySelectorAll("[data-cond-remove]").forEach(function (b) { b.remove(); });
      row.querySelectorAll(".field-error").forEach(function (p) { p.remove(); });
      row.classList.remove("has-error");
      list.appendChild(row);
      renumber();
      wire(row);
      row.querySelector(".cond-field").focus();
    });
  }

  document.querySelectorAll("[data-condrows]").forEach(setup);
})();
