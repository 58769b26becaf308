/* Admin studio, approval processes and workflow rules (metacrm/studio/automation): show only the
   inputs that fit the chosen approver kind, transition field, action kind or trigger. Without this
   script every input is shown and the server reads only the ones that apply. */
(function () {
  "use strict";
  var PAIRS = [["data-approver-kind", "data-approver-for"], ["data-transition-field", "data-values-for"],
               ["data-action-kind", "data-action-for"], ["data-trigger-kind", "data-trigger-for"]];

  function sync(select, target) {
    var item = select.closest(".studio-item");
    var scope = item || select.form || document;
    scope.querySelectorAll("[" + target + "]").forEach(function (el) {
      if (el.closest(".studio-item") !== item) { return; }  // another step's or action's input
      var wanted = el.getAttribute(target).split(" ");
      el.hidden = select.value === "" ? target === "data-values-for" : wanted.indexOf(select.value) < 0;
    });
  }

  // "changes to": the suggestions are the values of the field being watched
  document.querySelectorAll("[data-options-by]").forEach(function (input) {
    var by = document.getElementById(input.getAttribute("data-options-by"));
    if (!by) { return; }
    by.addEventListener("change", function () { input.setAttribute("list", input.id.replace("_to", "") + "-options-" + by.value); });
  });

  PAIRS.forEach(function (pair) {
    document.querySelectorAll("[" + pair[0] + "]").forEach(function (select) {
      select.addEventListener("change", function () { sync(select, pair[1]); });
      sync(select, pair[1]);
    });
  });
})();
