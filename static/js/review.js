// Keyboard-first reviewing. A static file because the app's CSP allows no inline script, no inline handlers and
// no eval; everything here works from data-* attributes and the htmx attributes already in the markup.
(function () {
  "use strict";

  const review = document.getElementById("review");
  if (!review) return;
  const overlay = document.getElementById("shortcuts");

  // Requests in flight, so j/k/r never navigate away while a label or note is still being saved.
  // Counted on the XHR itself: htmx fires its after-request events on the element, which a swap may already have
  // removed from the document, so those events never bubble up to a listener here.
  let pending = 0;
  document.body.addEventListener("htmx:beforeSend", function (event) {
    const xhr = event.detail && event.detail.xhr;
    if (!xhr) return;
    pending += 1;
    xhr.addEventListener("loadend", function () { pending = Math.max(0, pending - 1); });
  });

  // The pass/fail buttons are not part of the swapped region; mirror the saved verdict onto them.
  function syncVerdictButtons() {
    review.querySelectorAll(".verdict-row").forEach(function (row) {
      const state = row.querySelector(".verdict");
      const verdict = state ? state.dataset.verdict : "";
      row.querySelectorAll("[data-verdict-button]").forEach(function (button) {
        const selected = button.dataset.verdictButton === verdict;
        button.classList.toggle("is-selected", selected);
        button.setAttribute("aria-pressed", selected ? "true" : "false");
      });
    });
  }
  document.body.addEventListener("htmx:afterSettle", syncVerdictButtons);
  document.body.addEventListener("htmx:load", syncVerdictButtons);

  function criteria() {
    return Array.from(review.querySelectorAll(".criterion"));
  }

  function focusedCriterion() {
    return review.querySelector(".criterion.is-focused") || criteria()[0] || null;
  }

  function focusCriterion(number) {
    const target = review.querySelector('.criterion[data-number="' + number + '"]');
    if (!target) return;
    criteria().forEach(function (el) { el.classList.toggle("is-focused", el === target); });
    target.scrollIntoView({ block: "nearest" });
  }

  function isTyping(el) {
    if (!el || el === document.body) return false;
    const tag = el.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
  }

  let flashTimer = null;
  function flash(message) {
    let box = document.getElementById("review-flash");
    if (!box) {
      box = document.createElement("div");
      box.id = "review-flash";
      box.className = "flash";
      box.setAttribute("role", "status");
      document.body.appendChild(box);
    }
    box.textContent = message;
    box.hidden = false;
    clearTimeout(flashTimer);
    flashTimer = setTimeout(function () { box.hidden = true; }, 3000);
  }

  // A critique typed before pass/fail was chosen is not saved; warn once before leaving it behind.
  let warnedAt = 0;
  function hasUnsavedCritique() {
    return criteria().some(function (el) {
      const area = el.querySelector("textarea.critique");
      const verdict = el.querySelector(".verdict");
      return area && area.value.trim() !== "" && verdict && !verdict.dataset.verdict;
    });
  }

  function whenSettled(callback) {
    // Wait until no request has been in flight for two consecutive checks: a queued request (hx-sync) starts
    // only as the previous one ends, so one idle moment is not proof that everything is saved.
    let idle = 0;
    let waited = 0;
    (function check() {
      idle = pending === 0 ? idle + 1 : 0;
      if (idle >= 2 || waited > 5000) { callback(); return; }
      waited += 50;
      setTimeout(check, 50);
    })();
  }

  function go(url) {
    if (!url) return;
    if (hasUnsavedCritique() && Date.now() - warnedAt > 4000) {
      warnedAt = Date.now();
      flash("A critique is not saved: choose pass or fail first (press again to leave anyway).");
      return;
    }
    whenSettled(function () { window.location.assign(url); });
  }

  function clickVerdict(verdict) {
    const criterion = focusedCriterion();
    if (!criterion) return;
    const button = criterion.querySelector('[data-verdict-button="' + verdict + '"]');
    if (button) button.click();
  }

  function toggleOverlay(show) {
    if (!overlay) return;
    overlay.hidden = show === undefined ? !overlay.hidden : !show;
  }

  document.addEventListener("keydown", function (event) {
    const target = event.target;
    if (event.key === "Escape") {
      if (overlay && !overlay.hidden) { toggleOverlay(false); event.preventDefault(); return; }
      if (isTyping(target)) { target.blur(); event.preventDefault(); }
      return;
    }
    // Ctrl/Cmd+Enter in a note box adds or saves the note.
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && target.tagName === "TEXTAREA") {
      const form = target.closest(".notes form");
      // Leave the field first: htmx would otherwise put focus back into the fresh note box after the swap,
      // and the next j would be typed into it instead of moving on.
      if (form) { event.preventDefault(); target.blur(); form.requestSubmit(); }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || isTyping(target)) return;

    const key = event.key;
    let handled = true;
    if (key === "j") {
      go(review.dataset.nextUrl);
    } else if (key === "k") {
      go(review.dataset.previousUrl);
    } else if (key === "p") {
      clickVerdict("pass");
    } else if (key === "f") {
      clickVerdict("fail");
    } else if (key >= "1" && key <= "9") {
      focusCriterion(key);
    } else if (key === "c") {
      const criterion = focusedCriterion();
      const area = criterion && criterion.querySelector("textarea.critique");
      if (area) area.focus(); else handled = false;
    } else if (key === "n") {
      const note = document.getElementById("note-new");
      if (note) note.focus(); else handled = false;
    } else if (key === "r") {
      const form = document.getElementById("mark-reviewed");
      if (form) whenSettled(function () { form.requestSubmit(); }); else handled = false;
    } else if (key === "?") {
      toggleOverlay();
    } else {
      handled = false;
    }
    // Keep the letter out of the field that was just focused.
    if (handled) event.preventDefault();
  });

  // Clicking a criterion focuses it, so p/f then apply to what the mouse last touched.
  review.addEventListener("click", function (event) {
    const criterion = event.target.closest && event.target.closest(".criterion");
    if (criterion) focusCriterion(criterion.dataset.number);
  });
  review.addEventListener("focusin", function (event) {
    const criterion = event.target.closest && event.target.closest(".criterion");
    if (criterion) focusCriterion(criterion.dataset.number);
  });

  document.addEventListener("click", function (event) {
    const action = event.target.closest && event.target.closest("[data-action]");
    if (!action) return;
    if (action.dataset.action === "shortcuts") toggleOverlay();
    if (action.dataset.action === "close-shortcuts") toggleOverlay(false);
  });
  if (overlay) {
    overlay.addEventListener("click", function (event) { if (event.target === overlay) toggleOverlay(false); });
  }
  // The script is deferred: tools (and impatient tests) can wait for this before pressing keys.
  review.dataset.keyboardReady = "1";
})();
