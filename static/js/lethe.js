// Lethe's only script: row selection (shift-click ranges, page and "all matching"),
// the copy buttons, and disabling the erase button while nothing is selected. A form
// marked data-held (the conversation list) keeps its selection on the server: there the
// count, "select all" and the buttons come from the server, and this only ticks boxes.
// Loaded as a file so the CSP can forbid inline script.
(function () {
  "use strict";
  let lastClicked = null;

  function rows(form) { return Array.from(form.querySelectorAll("input[data-row]")); }

  function refresh(form) {
    const all = form.querySelector("[data-select-all-input]");
    const boxes = rows(form);
    const checked = boxes.filter((b) => b.checked).length;
    const header = form.querySelector("[data-select-page]");
    const counter = form.querySelector("[data-selection-count]");
    const erase = form.querySelector("[data-erase]");
    const banner = form.querySelector("#select-all");
    const pageFull = boxes.length > 0 && checked === boxes.length;
    if (header) {
      header.checked = pageFull;
      header.indeterminate = checked > 0 && !pageFull;
    }
    if (form.hasAttribute("data-held")) return;
    if (all && all.value === "1" && !pageFull) all.value = "0";
    if (banner) {
      banner.hidden = !pageFull;
      if (pageFull) banner.dispatchEvent(new CustomEvent("lethe:count"));
    }
    let text = checked + " selected";
    if (all && all.value === "1") text = "All " + all.dataset.total + " matching selected";
    if (counter) counter.textContent = text;
    if (erase) erase.disabled = checked === 0;
  }

  document.addEventListener("click", function (event) {
    const target = event.target;
    if (!(target instanceof HTMLElement)) return;
    const form = target.closest("form#selection");
    if (target.matches("input[data-row]") && form) {
      const boxes = rows(form);
      if (event.shiftKey && lastClicked && boxes.includes(lastClicked)) {
        const [a, b] = [boxes.indexOf(lastClicked), boxes.indexOf(target)].sort((x, y) => x - y);
        for (let i = a; i <= b; i++) boxes[i].checked = target.checked;
      }
      lastClicked = target;
      refresh(form);
    } else if (target.matches("input[data-select-page]") && form) {
      rows(form).forEach((b) => { b.checked = target.checked; });
      refresh(form);
    } else if (target.matches("button[data-select-all]") && form && !form.hasAttribute("data-held")) {
      const all = form.querySelector("[data-select-all-input]");
      all.value = "1";
      all.dataset.total = target.dataset.total;
      refresh(form);
    } else if (target.matches("button[data-copy]")) {
      if (navigator.clipboard) navigator.clipboard.writeText(target.dataset.copy);
    }
  });

  // Not forgetting the last click here: the selection bar is swapped after every tick,
  // and a shift-click must still find its anchor (the click handler checks that the
  // anchor is still one of the rows).
  document.addEventListener("htmx:afterSwap", function () {
    const form = document.querySelector("form#selection");
    if (form) refresh(form);
    const announce = document.getElementById("selection-announce");
    const counter = document.querySelector("#selection-bar [data-selection-count]");
    if (announce && counter && announce.textContent !== counter.textContent) {
      announce.textContent = counter.textContent;
    }
  });
  document.addEventListener("DOMContentLoaded", function () {
    const form = document.querySelector("form#selection");
    if (form) refresh(form);
  });
})();

// The viewer's time zone, for the server to show times in it (dashboard/lib/timezones.py).
(function () {
  "use strict";
  let zone = "";
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { return; }
  if (!zone) return;
  const cookies = document.cookie.split("; ");
  if (cookies.includes("lethe_tz_fixed=1")) return;  // chosen on the time-zone page
  const current = cookies.find((c) => c.startsWith("lethe_tz="));
  if (current && decodeURIComponent(current.slice(9)) === zone) return;
  const secure = location.protocol === "https:" ? "; Secure" : "";
  document.cookie = "lethe_tz=" + encodeURIComponent(zone) +
    "; path=/; max-age=31536000; SameSite=Lax" + secure;
})();

// A policy form shows only the field its scope uses (every field shows without script).
(function () {
  "use strict";
  function follow(form) {
    const scope = form.querySelector("select[name=scope]");
    if (!scope) return;
    form.querySelectorAll("[data-for-scope]").forEach(function (field) {
      field.hidden = field.dataset.forScope !== scope.value;
    });
  }
  document.addEventListener("change", function (event) {
    const target = event.target;
    if (target instanceof HTMLSelectElement && target.name === "scope") {
      const form = target.closest("form[data-policy-form]");
      if (form) follow(form);
    }
  });
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-policy-form]").forEach(follow);
  });
})();
