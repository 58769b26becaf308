/* Kanban boards: drag a card to another column, or pick a value in the card's select.
   Either way the card's own form is posted (fetch, X-Requested-With: fetch); the card moves
   only when the server saved it, otherwise the refusal is shown on the card. Without script,
   the form posts normally and the page reloads. "More" appends the column's next page. */
(function () {
  "use strict";
  var board = document.getElementById("kanban");
  if (!board) return;
  var dragged = null;

  function column(value) {
    return board.querySelector('.kanban-col[data-value="' + CSS.escape(value) + '"]');
  }

  function showError(card, text) {
    var box = card.querySelector(".kanban-error");
    if (box) { box.textContent = text; box.hidden = false; }
    card.classList.add("refused");
  }

  function updateTotals(columns) {
    Object.keys(columns || {}).forEach(function (value) {
      var col = column(value);
      if (!col) return;
      var count = col.querySelector(".kanban-count");
      var sum = col.querySelector(".kanban-sum");
      if (count) count.textContent = columns[value].count;
      if (sum && columns[value].sum != null) sum.textContent = columns[value].sum;
      var empty = col.querySelector(".kanban-empty");
      if (empty) empty.hidden = col.querySelectorAll(".kanban-card").length > 0;
    });
  }

  function move(card, value) {
    var form = card.querySelector("form.kanban-move");
    if (!form) return;
    var select = form.querySelector("select[name=value]");
    var previous = card.closest(".kanban-col").dataset.value;
    if (value === previous) return;
    select.value = value;
    card.classList.add("moving");
    card.classList.remove("refused");
    var box = card.querySelector(".kanban-error");
    if (box) { box.hidden = true; box.textContent = ""; }
    fetch(form.action, {method: "POST", body: new FormData(form), credentials: "same-origin",
                        headers: {"X-Requested-With": "fetch", "Accept": "application/json"}})
      .then(function (response) {
        return response.json().then(function (data) { return {ok: response.ok, data: data}; });
      })
      .then(function (result) {
        card.classList.remove("moving");
        if (result.ok && result.data.ok) {
          form.querySelector("input[name=version]").value = result.data.version;
          var target = column(value);
          if (target) target.querySelector(".kanban-cards").prepend(card);
          updateTotals(result.data.columns);
          card.focus();
        } else {
          select.value = previous;
          showError(card, (result.data && result.data.error) || board.dataset.failed);
        }
      })
      .catch(function () {
        card.classList.remove("moving");
        select.value = previous;
        showError(card, board.dataset.failed);
      });
  }

  board.addEventListener("submit", function (event) {
    var form = event.target.closest("form.kanban-move");
    if (!form) return;
    event.preventDefault();
    move(form.closest(".kanban-card"), form.querySelector("select[name=value]").value);
  });
  board.addEventListener("dragstart", function (event) {
    var card = event.target.closest && event.target.closest(".kanban-card");
    if (!card) return;
    dragged = card;
    card.classList.add("dragging");
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", card.dataset.id);
  });
  board.addEventListener("dragend", function () {
    if (dragged) dragged.classList.remove("dragging");
    dragged = null;
    board.querySelectorAll(".drop-target").forEach(function (c) { c.classList.remove("drop-target"); });
  });
  board.addEventListener("dragover", function (event) {
    var col = event.target.closest && event.target.closest(".kanban-col");
    if (!col || !dragged) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "move";
    board.querySelectorAll(".drop-target").forEach(function (c) { if (c !== col) c.classList.remove("drop-target"); });
    col.classList.add("drop-target");
  });
  board.addEventListener("drop", function (event) {
    var col = event.target.closest && event.target.closest(".kanban-col");
    if (!col || !dragged) return;
    event.preventDefault();
    col.classList.remove("drop-target");
    move(dragged, col.dataset.value);
  });
  board.addEventListener("click", function (event) {
    var more = event.target.closest && event.target.closest("a.kanban-more");
    if (!more) return;
    event.preventDefault();
    var col = more.closest(".kanban-col");
    fetch(more.href, {credentials: "same-origin"}).then(function (r) { return r.text(); }).then(function (html) {
      var doc = new DOMParser().parseFromString(html, "text/html");
      var fresh = doc.querySelector('.kanban-col[data-value="' + CSS.escape(col.dataset.value) + '"]');
      if (!fresh) { window.location.href = more.href; return; }
      var list = col.querySelector(".kanban-cards");
      fresh.querySelectorAll(".kanban-card").forEach(function (card) {
        if (!document.getElementById(card.id)) list.appendChild(document.importNode(card, true));
      });
      var next = fresh.querySelector("a.kanban-more");
      if (next) more.href = next.href; else more.remove();
    }).catch(function () { window.location.href = more.href; });
  });
})();
