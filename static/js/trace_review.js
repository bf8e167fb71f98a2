// Keyboard-first reviewing. A static file because the app's CSP allows no inline script, no inline handlers and
// no eval; everything here works from data-* attributes and the htmx attributes already in the markup.
//
// Review at the speed of thought: while the expert reads a trace, the next one's page is fetched ahead
// (`X-Review-Prefetch`: a plain GET that changes nothing on the server, so no queue step is used up). On `r` or `j`
// the server is still asked where the queue goes (`X-Review-Swap`); only when that is the prefetched page is it
// swapped in place (URL pushed, Back reloads what the URL names); any other answer — a blind re-review, the end
// of the queue, a queue changed meanwhile — is a normal navigation. The swap answer carries a fresh `opened`
// token, so a trace's time is counted from when it is shown, never from when it was prefetched.
(function () {
  "use strict";

  if (!document.getElementById("review")) return;

  // Requests in flight, so j/k/r never navigate away while a label or note is still being saved.
  // Counted on the XHR itself: htmx fires its after-request events on the element, which a swap may already have
  // removed from the document, so those events never bubble up to a listener here. The body element itself stays
  // across swaps (only its children change), so this listener is added once.
  let pending = 0;
  document.body.addEventListener("htmx:beforeSend", function (event) {
    const xhr = event.detail && event.detail.xhr;
    if (!xhr) return;
    pending += 1;
    xhr.addEventListener("loadend", function () { pending = Math.max(0, pending - 1); });
  });

  // The page ahead: { from: the trace it follows, url: its path and query, doc: the parsed page } once loaded.
  let ahead = null;
  // The path and query of what is on screen, so Back/Forward (popstate) can tell a changed URL from a hash.
  let shown = location.pathname + location.search;
  let controller = null;
  // Scripts this document has run; a swapped-in body's own script tags are dropped, so remember them from here.
  const loadedScripts = Array.from(document.scripts).map(function (s) { return s.src; }).filter(Boolean);

  function pathOf(url) {
    const parsed = new URL(url, location.href);
    return parsed.pathname + parsed.search;
  }

  function prefetchEnabled(review) {
    try {
      // A switch for the benchmark's baseline and for anyone who wants plain page loads.
      if (window.localStorage.getItem("evalstudio.prefetch") === "off") return false;
    } catch (error) { /* storage blocked: prefetch as usual */ }
    return review.dataset.prefetch === "1" && Boolean(review.dataset.nextUrl) && typeof window.fetch === "function";
  }

  function prefetch(review) {
    ahead = null;
    if (!prefetchEnabled(review)) return;
    const entry = { from: review.dataset.traceId, url: null, doc: null };
    ahead = entry;
    fetch(review.dataset.nextUrl, { credentials: "same-origin", headers: { "X-Review-Prefetch": "1" } })
      .then(function (response) {
        if (response.status !== 200) return null;
        return response.text().then(function (html) {
          const doc = new DOMParser().parseFromString(html, "text/html");
          const next = doc.getElementById("review");
          // Only a review page of another trace, whose scripts are all loaded here already, can be swapped in.
          if (!next || next.dataset.traceId === entry.from || next.dataset.prefetch !== "1") return null;
          const needs = Array.from(doc.querySelectorAll("script[src]")).map(function (s) {
            return new URL(s.getAttribute("src"), location.href).href;
          });
          if (needs.some(function (src) { return loadedScripts.indexOf(src) === -1; })) return null;
          doc.querySelectorAll("script").forEach(function (s) { s.remove(); });
          if (ahead !== entry) return null;
          entry.url = pathOf(response.url);
          entry.doc = doc;
          const current = document.getElementById("review");
          if (current && current.dataset.traceId === entry.from) current.dataset.prefetched = "1";
          return null;
        });
      })
      .catch(function () { if (ahead === entry) ahead = null; });
  }

  // Show the prefetched page: its body in place of this one. Its `opened` token is from when it was fetched, so
  // the field stays empty (a label made now records no time) until the server's answer brings a fresh one.
  function swapIn(entry) {
    const doc = entry.doc;
    ahead = null;
    if (controller) controller.abort();
    document.title = doc.title;
    Array.from(doc.body.attributes).forEach(function (attr) { document.body.setAttribute(attr.name, attr.value); });
    document.body.replaceChildren.apply(
      document.body, Array.from(doc.body.childNodes).map(function (node) { return document.adoptNode(node); })
    );
    const token = document.getElementById("opened-at");
    if (token) token.value = "";
    history.pushState({ review: entry.url }, "", entry.url);
    shown = entry.url;
    if (document.activeElement && document.activeElement !== document.body) document.activeElement.blur();
    window.scrollTo(0, 0);
    if (window.htmx) window.htmx.process(document.body);
    return start(false);
  }

  // The server's answer for the step, on the page now shown: the fresh token, the progress after the step, and
  // whether the next `r` may draw a re-review; then fetch the page after this one.
  function confirmShown(review, response, progressHtml) {
    const token = document.getElementById("opened-at");
    if (token) token.value = response.headers.get("X-Opened-At") || "";
    if (progressHtml) {
      const fresh = new DOMParser().parseFromString(progressHtml, "text/html").getElementById("queue-progress");
      const stale = document.getElementById("queue-progress");
      if (fresh && stale) stale.replaceWith(document.adoptNode(fresh));
    }
    review.dataset.rereviewNext = response.headers.get("X-Review-Rereview-Next") === "1" ? "1" : "0";
    review.dataset.confirmed = "1";
    prefetch(review);
  }

  // One step of the queue with the page ahead. `request` sends the step (r's POST or j's GET, X-Review-Swap).
  // `atOnce`: show the page ahead now and let the answer confirm it (the answer naming another page — a queue
  // moved on in another tab — replaces it with that page); else wait for the answer and swap only when it names
  // the page ahead. Returns false when nothing is ahead, so the caller navigates as usual.
  function stepTo(request, atOnce) {
    const entry = ahead;
    if (!entry || !entry.doc) return false;
    const from = window.location.href;
    // Counted like a save: a key pressed before the answer waits for it.
    pending += 1;
    const answer = request();
    let review = atOnce ? swapIn(entry) : null;
    answer
      .then(function (response) {
        const target = response.headers.get("X-Review-Location");
        if (!response.ok || !target) throw new Error("no swap answer");
        return response.text().then(function (progressHtml) {
          if (pathOf(target) !== entry.url) {
            // In place of the page shown ahead (no history entry for it); else a step onward as usual.
            if (review) window.location.replace(target); else window.location.assign(target);
            return;
          }
          if (!review) review = swapIn(entry);
          if (review) confirmShown(review, response, progressHtml);
        });
      })
      .catch(function () {
        // The step may not have reached the server: show, by a page load, the trace the key was pressed on.
        window.location.replace(from);
      })
      .finally(function () { pending = Math.max(0, pending - 1); });
    return true;
  }

  function navigate(url) {
    const review = document.getElementById("review");
    if (review && url === review.dataset.nextUrl) {
      // j never draws a re-review (only r's queue steps do): show the page ahead at once.
      const swapping = stepTo(function () {
        return fetch(url, { credentials: "same-origin", headers: { "X-Review-Swap": "1" } });
      }, true);
      if (swapping) return;
    }
    window.location.assign(url);
  }

  // Back and Forward over swapped pages: the document shows one trace while the URL names another; load it.
  window.addEventListener("popstate", function () {
    if (location.pathname + location.search !== shown) window.location.reload();
  });

  // `fetchAhead` false: a page shown ahead of the server's answer fetches the next one only once it is confirmed.
  function start(fetchAhead) {
    controller = new AbortController();
    const review = init(controller.signal);
    if (review && fetchAhead) prefetch(review);
    return review;
  }

  function init(signal) {
    const review = document.getElementById("review");
    if (!review) return null;
    const overlay = document.getElementById("shortcuts");

    // "Mark reviewed & next" without a full page load when the next page is already here; at once, unless this
    // step may draw a blind re-review (then the server's answer decides what is shown).
    const markReviewed = document.getElementById("mark-reviewed");
    if (markReviewed) {
      markReviewed.addEventListener("submit", function (event) {
        if (event.defaultPrevented) return;
        const body = new FormData(markReviewed);
        const swapping = stepTo(function () {
          return fetch(markReviewed.action, {
            method: "POST",
            body: body,
            credentials: "same-origin",
            headers: { "X-Review-Swap": "1" },
          });
        }, review.dataset.rereviewNext !== "1");
        if (swapping) event.preventDefault();
      });
    }

    // The pass/fail buttons are not part of the swapped region; mirror the saved verdict onto them.
    function syncVerdictButtons() {
      review.querySelectorAll(".verdict-row").forEach(function (row) {
        const state = row.querySelector(".verdict");
        const verdict = state ? state.dataset.verdict : "";
        row.querySelectorAll("[data-verdict-button]").forEach(function (button) {
          const selected = button.dataset.verdictButton === verdict;
          button.classList.toggle("is-selected", selected);
          // The blind form's choices are labels around radio inputs: the radio carries the state for assistive tech.
          if (button.tagName === "BUTTON") button.setAttribute("aria-pressed", selected ? "true" : "false");
        });
      });
    }
    document.body.addEventListener("htmx:afterSettle", syncVerdictButtons, { signal: signal });
    document.body.addEventListener("htmx:load", syncVerdictButtons, { signal: signal });

    // The blind label of a disagreement session: a plain form, locked with r. Nothing is saved until then, so its
    // state lives here: the chosen verdict mirrored onto the buttons, and a nudge while a fail critique is terse.
    const blindForm = review.querySelector("form[data-blind-form]");
    const TERSE_CRITIQUE_WORDS = 8;
    function syncBlindForm() {
      if (!blindForm) return;
      const checked = blindForm.querySelector('input[name="verdict"]:checked');
      const verdict = checked ? checked.value : "";
      const state = blindForm.querySelector(".verdict");
      if (state) state.dataset.verdict = verdict;
      syncVerdictButtons();
      const area = blindForm.querySelector("textarea.critique");
      const words = area ? area.value.trim().split(/\s+/).filter(Boolean).length : 0;
      const nudge = blindForm.querySelector("[data-terse-nudge]");
      if (nudge) nudge.hidden = !(verdict === "fail" && words < TERSE_CRITIQUE_WORDS);
    }
    if (blindForm) {
      blindForm.addEventListener("change", syncBlindForm);
      blindForm.addEventListener("input", syncBlindForm);
      syncBlindForm();
    }
    function blindLabelStarted() {
      if (!blindForm) return false;
      const area = blindForm.querySelector("textarea.critique");
      return Boolean(blindForm.querySelector('input[name="verdict"]:checked') || (area && area.value.trim()));
    }

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
      // A focused radio or checkbox takes no text: the shortcuts keep working (the blind form's pass/fail).
      if (tag === "INPUT" && (el.type === "radio" || el.type === "checkbox")) return false;
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
      // The second check follows the first idle one after a task turn, not 50 ms: htmx starts a queued request
      // in the previous one's load handler, so a turn of the event loop is enough to see it, and a key pressed
      // with nothing in flight (most of them) costs no waiting.
      let idle = 0;
      let waited = 0;
      (function check() {
        idle = pending === 0 ? idle + 1 : 0;
        if (idle >= 2 || waited > 5000) { callback(); return; }
        const delay = idle ? 0 : 50;
        waited += delay || 1;
        setTimeout(check, delay);
      })();
    }

    function go(url) {
      if (!url) return;
      // Checked once the saves in flight have landed: a verdict on its way makes the critique beside it saved.
      whenSettled(function () {
        // This page was swapped out meanwhile (a second key): its step is not the one on screen any more.
        if (signal.aborted) return;
        if (blindLabelStarted() && Date.now() - warnedAt > 4000) {
          warnedAt = Date.now();
          flash("The blind label is not locked: press r to lock it (press again to leave anyway).");
          return;
        }
        if (hasUnsavedCritique() && Date.now() - warnedAt > 4000) {
          warnedAt = Date.now();
          flash("A critique is not saved: choose pass or fail first (press again to leave anyway).");
          return;
        }
        navigate(url);
      });
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

    // The `m` picker: code a note to a failure mode with the keyboard. The target is the note last clicked or
    // focused, else the newest one. Options are built with textContent only: mode names are user text.
    const picker = document.getElementById("mode-picker");
    const pickerInput = document.getElementById("mode-picker-input");
    const pickerList = document.getElementById("mode-picker-list");
    const pickerStatus = document.getElementById("mode-picker-status");
    const PICKER_MAX_OPTIONS = 50;
    let pickerNoteId = null;
    let pickerModes = [];
    let pickerOptions = [];
    let pickerActive = 0;

    function codableNotes() {
      return Array.from(review.querySelectorAll(".note-modes[data-assign-url]")).map(function (chips) {
        return chips.closest(".note");
      });
    }

    function codingTarget() {
      const marked = review.querySelector(".note.is-coding-target .note-modes[data-assign-url]");
      if (marked) return marked.closest(".note");
      const notes = codableNotes();
      return notes.length ? notes[notes.length - 1] : null;
    }

    function markCodingTarget(note) {
      review.querySelectorAll(".note.is-coding-target").forEach(function (el) {
        if (el !== note) el.classList.remove("is-coding-target");
      });
      if (note) note.classList.add("is-coding-target");
    }

    function pickerIsOpen() {
      return picker && !picker.hidden;
    }

    function renderPickerOptions() {
      const typed = pickerInput.value.trim().replace(/\s+/g, " ");
      const needle = typed.toLowerCase();
      const matches = pickerModes.filter(function (mode) {
        return mode.name.toLowerCase().indexOf(needle) !== -1;
      });
      // Names that start with what was typed come first; the server's order (by name) otherwise.
      matches.sort(function (a, b) {
        return (b.name.toLowerCase().indexOf(needle) === 0) - (a.name.toLowerCase().indexOf(needle) === 0);
      });
      pickerOptions = matches.slice(0, PICKER_MAX_OPTIONS).map(function (mode) {
        return { kind: "assign", id: mode.id, name: mode.name };
      });
      const exact = pickerModes.some(function (mode) { return mode.name.toLowerCase() === needle; });
      if (typed && !exact) pickerOptions.push({ kind: "create", name: typed });
      pickerActive = Math.min(pickerActive, Math.max(0, pickerOptions.length - 1));
      pickerList.replaceChildren();
      pickerOptions.forEach(function (option, index) {
        const item = document.createElement("li");
        item.setAttribute("role", "option");
        item.id = "mode-option-" + index;
        item.dataset.index = String(index);
        item.setAttribute("aria-selected", index === pickerActive ? "true" : "false");
        if (option.kind === "create") {
          item.className = "create";
          item.textContent = "Create mode \u201c" + option.name + "\u201d";
        } else {
          item.textContent = option.name;
        }
        pickerList.appendChild(item);
      });
      if (pickerOptions.length) {
        pickerInput.setAttribute("aria-activedescendant", "mode-option-" + pickerActive);
        const active = pickerList.children[pickerActive];
        if (active) active.scrollIntoView({ block: "nearest" });
      } else {
        pickerInput.removeAttribute("aria-activedescendant");
      }
      if (!pickerModes.length && !typed) pickerStatus.textContent = "No failure modes yet: type a name to create one.";
      else if (!pickerOptions.length) pickerStatus.textContent = "No mode matches.";
      else pickerStatus.textContent = "";
    }

    function openPicker(note) {
      if (!picker || !note) return false;
      const chips = note.querySelector(".note-modes[data-assign-url]");
      if (!chips) return false;
      markCodingTarget(note);
      pickerNoteId = chips.dataset.noteId;
      const text = note.querySelector(".note-text");
      document.getElementById("mode-picker-note").textContent = text ? text.textContent.trim().slice(0, 160) : "";
      pickerInput.value = "";
      pickerActive = 0;
      pickerModes = [];
      renderPickerOptions();
      pickerStatus.textContent = "Loading failure modes\u2026";
      picker.hidden = false;
      pickerInput.focus();
      // Fetched on each opening, so a mode created on another page or by a teammate is there.
      fetch(picker.dataset.choicesUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.json();
        })
        .then(function (data) {
          pickerModes = Array.isArray(data.modes) ? data.modes : [];
          renderPickerOptions();
          picker.dataset.ready = "1";
        })
        .catch(function () {
          pickerStatus.textContent = "Could not load the failure modes; you can still create one.";
          picker.dataset.ready = "1";
        });
      return true;
    }

    function closePicker() {
      if (!picker) return;
      picker.hidden = true;
      delete picker.dataset.ready;
      pickerNoteId = null;
      if (document.activeElement === pickerInput) pickerInput.blur();
    }

    function choosePickerOption(index) {
      const option = pickerOptions[index];
      const chips = pickerNoteId && document.getElementById("note-modes-" + pickerNoteId);
      if (!option || !chips) return;
      const url = option.kind === "create" ? chips.dataset.createUrl : chips.dataset.assignUrl;
      const values = option.kind === "create" ? { name: option.name } : { mode: String(option.id) };
      closePicker();
      window.htmx.ajax("POST", url, { source: chips, target: chips, swap: "outerHTML", values: values });
    }

    if (picker) {
      pickerInput.addEventListener("input", function () {
        pickerActive = 0;
        renderPickerOptions();
      });
      pickerInput.addEventListener("keydown", function (event) {
        if (event.key === "ArrowDown" || event.key === "ArrowUp") {
          event.preventDefault();
          if (!pickerOptions.length) return;
          const step = event.key === "ArrowDown" ? 1 : -1;
          pickerActive = (pickerActive + step + pickerOptions.length) % pickerOptions.length;
          renderPickerOptions();
        } else if (event.key === "Enter") {
          event.preventDefault();
          choosePickerOption(pickerActive);
        }
      });
      pickerList.addEventListener("mousedown", function (event) {
        // mousedown, not click: the input keeps focus, so the list is not torn down before the choice lands.
        const item = event.target.closest("li[data-index]");
        if (!item) return;
        event.preventDefault();
        choosePickerOption(Number(item.dataset.index));
      });
      picker.addEventListener("click", function (event) { if (event.target === picker) closePicker(); });
    }

    document.addEventListener("keydown", function (event) {
      const target = event.target;
      if (event.key === "Escape") {
        if (pickerIsOpen()) { closePicker(); event.preventDefault(); return; }
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
        // In a disagreement session r locks the blind label, then decides; elsewhere it marks the trace reviewed.
        const form = review.querySelector('form[data-submit-key="r"]') || document.getElementById("mark-reviewed");
        // A second r while the first submit is on its way would abort it and post again.
        if (form) whenSettled(function () { if (!form.dataset.submitted) form.requestSubmit(); }); else handled = false;
      } else if (/^[a-z]$/.test(key) && review.querySelector('[data-key="' + key + '"]')) {
        // Choices with a key of their own, e.g. b / e: keep the blind or the earlier label.
        review.querySelector('[data-key="' + key + '"]').click();
      } else if (key === "m") {
        if (!picker) handled = false;
        else if (!openPicker(codingTarget())) flash("No note to code yet: write one first (n).");
      } else if (key === "g") {
        // The golden-set panel: the reason to file this trace under (Tab to the comment, Enter adds), or Remove.
        const control = document.querySelector("#golden-panel select, #golden-panel button");
        if (control) control.focus(); else handled = false;
      } else if (key === "?") {
        toggleOverlay();
      } else {
        handled = false;
      }
      // Keep the letter out of the field that was just focused.
      if (handled) event.preventDefault();
    }, { signal: signal });

    // Only a submit that passed the form's own checks gets here; a page restored by Back may submit again.
    review.addEventListener("submit", function (event) { event.target.dataset.submitted = "1"; });
    window.addEventListener("pageshow", function () {
      review.querySelectorAll("form[data-submitted]").forEach(function (form) { delete form.dataset.submitted; });
    }, { signal: signal });

    // Clicking a criterion focuses it, so p/f then apply to what the mouse last touched.
    review.addEventListener("click", function (event) {
      const criterion = event.target.closest && event.target.closest(".criterion");
      if (criterion) focusCriterion(criterion.dataset.number);
    });
    review.addEventListener("focusin", function (event) {
      const criterion = event.target.closest && event.target.closest(".criterion");
      if (criterion) focusCriterion(criterion.dataset.number);
    });

    review.addEventListener("click", function (event) {
      const note = event.target.closest && event.target.closest(".note");
      if (note) markCodingTarget(note);
    });

    document.addEventListener("click", function (event) {
      const action = event.target.closest && event.target.closest("[data-action]");
      if (!action) return;
      if (action.dataset.action === "pick-mode") openPicker(action.closest(".note"));
      if (action.dataset.action === "shortcuts") toggleOverlay();
      if (action.dataset.action === "close-shortcuts") toggleOverlay(false);
    }, { signal: signal });
    if (overlay) {
      overlay.addEventListener("click", function (event) { if (event.target === overlay) toggleOverlay(false); });
    }
    // The script is deferred: tools (and impatient tests) can wait for this before pressing keys.
    review.dataset.keyboardReady = "1";
    return review;
  }

  start(true);
})();
