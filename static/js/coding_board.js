// The coding board: "select all on this page" and a count of the selected notes. A static file because the CSP
// allows no inline script. Delegated listeners, so the board keeps working after htmx swaps it.
(function () {
  "use strict";

  function boxes() {
    return Array.from(document.querySelectorAll('#coding-form input[name="note"]'));
  }

  function update() {
    const all = boxes();
    const selected = all.filter(function (box) { return box.checked; }).length;
    const counter = document.getElementById("selected-count");
    if (counter) counter.textContent = selected ? selected + " selected" : "";
    const master = document.querySelector("[data-select-all]");
    if (master) {
      master.checked = all.length > 0 && selected === all.length;
      master.indeterminate = selected > 0 && selected < all.length;
    }
  }

  document.addEventListener("change", function (event) {
    const target = event.target;
    if (target.matches && target.matches("[data-select-all]")) {
      boxes().forEach(function (box) { box.checked = target.checked; });
    }
    if (target.closest && target.closest("#coding-form")) update();
  });
  document.body.addEventListener("htmx:afterSettle", update);
  update();
  document.body.dataset.codingReady = "1";
})();
