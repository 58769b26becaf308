/* The condition form (templates/_condition_rows.html): add and remove rows and groups, and give each
   row the operators and the value input of the field it names. Items are numbered in document order
   and each names the group it is in, so the server reads the nesting from the names alone. The form
   posts normally without this (a blank row and a blank group are always drawn). */
(function () {
  "use strict";

  function setup(box) {
    var prefix = box.getAttribute("data-condrows");
    var rootList = box.querySelector("[data-cond-list]");
    var rootAdd = box.querySelector(":scope > [data-cond-add]");
    var removeLabel = rootAdd.getAttribute("data-remove-label") || "×";

    function templateFor(name) {
      return box.querySelector('template[data-cond-field="' + name + '"]');
    }

    function rename(item, i, pairs) {
      pairs.forEach(function (pair) {
        var el = item.querySelector(":scope > ." + pair[0] + ", :scope > legend > ." + pair[0] +
                                    ", :scope > legend > label > ." + pair[0]);
        if (!el) { return; }
        var label = el.id ? item.querySelector('label[for="' + el.id + '"]') : null;
        el.name = prefix + "." + i + "." + pair[1];
        if (el.id) {
          el.id = prefix + "-" + i + "-" + pair[1];
          if (label) { label.htmlFor = el.id; }
        }
      });
    }

    function renumber() {
      var items = box.querySelectorAll("[data-condrow], [data-condgroup]");
      items.forEach(function (item, i) { item.setAttribute("data-cond-index", String(i)); });
      items.forEach(function (item, i) {
        var owner = item.parentElement.closest("[data-condgroup], [data-condrows]");
        var parent = item.querySelector(":scope > .cond-parent, :scope > legend > .cond-parent");
        parent.value = owner && owner.hasAttribute("data-condgroup") ? owner.getAttribute("data-cond-index") : "";
        if (item.hasAttribute("data-condrow")) {
          rename(item, i, [["cond-parent", "group"], ["cond-field", "field"], ["cond-op", "op"], ["cond-value", "value"]]);
        } else {
          rename(item, i, [["cond-kind", "kind"], ["cond-parent", "group"], ["cond-mode", "mode"], ["cond-not", "not"]]);
        }
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

    function wireRow(row) {
      row.querySelector(".cond-field").addEventListener("change", function () { applyField(row); });
      row.querySelector(".cond-op").addEventListener("change", function () { syncValue(row); });
      var remove = row.querySelector("[data-cond-remove]");
      if (!remove) {
        remove = document.createElement("button");
        remove.type = "button";
        remove.className = "btn btn-small cond-remove";
        remove.setAttribute("data-cond-remove", "");
        remove.textContent = removeLabel;
        row.insertBefore(remove, row.querySelector(".field-error"));
      }
      remove.hidden = false;
      remove.addEventListener("click", function () {
        var list = row.parentElement;
        if (list.querySelectorAll(":scope > [data-condrow]").length > 1) {
          row.remove();
        } else {
          row.querySelector(".cond-field").value = "";
          row.querySelector(".cond-value").value = "";
        }
        renumber();
      });
      syncValue(row);
    }

    function freshRow() {
      var row = rowPattern.cloneNode(true);
      row.querySelectorAll("[data-cond-remove]").forEach(function (b) { b.remove(); });
      row.querySelectorAll(".field-error").forEach(function (p) { p.remove(); });
      row.classList.remove("has-error");
      return row;
    }

    function wireAdders(list, addRow, addGroup) {
      addRow.hidden = false;
      addRow.addEventListener("click", function () {
        var row = freshRow();
        list.appendChild(row);
        renumber();
        wireRow(row);
        row.querySelector(".cond-field").focus();
      });
      addGroup.hidden = false;
      addGroup.addEventListener("click", function () {
        var group = groupPattern.cloneNode(true);
        list.appendChild(group);
        wireGroup(group);
        renumber();
        group.querySelector(".cond-mode").focus();
      });
    }

    function wireGroup(group) {
      var list = group.querySelector(":scope > [data-cond-list]");
      var actions = group.querySelector(":scope > .condgroup-actions");
      list.querySelectorAll(":scope > [data-condrow]").forEach(wireRow);
      wireAdders(list, actions.querySelector("[data-cond-add]"), actions.querySelector("[data-cond-add-group]"));
      var remove = actions.querySelector("[data-cond-remove-group]");
      remove.hidden = false;
      remove.addEventListener("click", function () {
        group.remove();
        renumber();
      });
      list.querySelectorAll(":scope > [data-condgroup]").forEach(wireGroup);
    }

    var rootRows = rootList.querySelectorAll(":scope > [data-condrow]");
    var rowPattern = rootRows[rootRows.length - 1].cloneNode(true);
    var blankGroup = rootList.querySelector(":scope > [data-cond-blank-group]");
    blankGroup.remove();
    blankGroup.removeAttribute("data-cond-blank-group");
    var isNew = blankGroup.querySelector(".condgroup-new");
    if (isNew) { isNew.remove(); }
    var groupPattern = blankGroup.cloneNode(true);
    rootRows.forEach(wireRow);
    rootList.querySelectorAll(":scope > [data-condgroup]").forEach(wireGroup);
    wireAdders(rootList, rootAdd, box.querySelector(":scope > [data-cond-add-group]"));
    renumber();
  }

  document.querySelectorAll("[data-condrows]").forEach(setup);
})();
