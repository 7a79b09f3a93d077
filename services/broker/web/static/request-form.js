// The new-request form, enhanced: the coverage preview follows the fields as they change (the
// dry run, from POST /requests/preview), and the item search ranks the catalogue as the analyst
// types (GET /requests/items). Without this script the form's own buttons do both.
(function () {
  "use strict";
  const form = document.getElementById("request-form");
  if (!form) return;
  const preview = document.getElementById("preview");
  const search = document.getElementById("q");
  const status = document.getElementById("q-status");
  const list = document.getElementById("items-list");
  const original = Array.from(list.children);

  function debounce(fn, ms) {
    let timer = null;
    return function () {
      clearTimeout(timer);
      timer = setTimeout(fn, ms);
    };
  }

  // -- the trusts' radios: the region's list, or the box of codes, under its radio ---------
  // (NHS.UK frontend's own conditional reveal sets aria-expanded on the radios, which ARIA does
  // not allow on a radio; here the revealed block simply follows the checked radio.)
  const populations = Array.from(form.querySelectorAll("input[name=population]"));
  function reveal() {
    for (const radio of populations) {
      const block = radio.dataset.reveals && document.getElementById(radio.dataset.reveals);
      if (block) block.classList.toggle("nhsuk-radios__conditional--hidden", !radio.checked);
    }
  }
  for (const radio of populations) radio.addEventListener("change", reveal);
  reveal();

  // -- the coverage preview ---------------------------------------------------------------
  let sent = 0;
  async function refreshPreview() {
    const body = new URLSearchParams(new FormData(form));
    body.set("action", "preview");
    const mine = ++sent;
    preview.setAttribute("aria-busy", "true");
    try {
      const response = await fetch(form.dataset.previewUrl, {
        method: "POST",
        body: body,
        credentials: "same-origin",
        headers: { Accept: "text/html" },
      });
      if (mine !== sent) return; // a later change has asked again
      if (response.ok) {
        preview.innerHTML = await response.text();
      } else if (response.status === 303 || response.redirected) {
        window.location.assign("/sign-in");
      }
    } catch (error) {
      // Offline or the server restarting: the "Check coverage" button still works.
    } finally {
      if (mine === sent) preview.removeAttribute("aria-busy");
    }
  }
  const schedulePreview = debounce(refreshPreview, 400);
  form.addEventListener("input", function (event) {
    if (event.target !== search) schedulePreview();
  });
  form.addEventListener("change", function (event) {
    if (event.target !== search) schedulePreview();
  });

  // -- the item search --------------------------------------------------------------------
  function show(order, scores) {
    const shown = new Set(order);
    for (const item of original) {
      const box = item.querySelector("input");
      item.hidden = !(shown.has(item.dataset.item) || box.checked);
      const tag = item.querySelector("[data-score]");
      if (tag) tag.remove();
      if (scores && scores.has(item.dataset.item)) {
        const score = document.createElement("strong");
        score.className = "nhsuk-tag nhsuk-tag--white";
        score.dataset.score = String(scores.get(item.dataset.item));
        score.textContent = scores.get(item.dataset.item) + "% match";
        item.querySelector("label").append(" ", score);
      }
    }
    const ranked = order
      .map((code) => original.find((item) => item.dataset.item === code))
      .filter(Boolean);
    for (const item of ranked.concat(original.filter((i) => !shown.has(i.dataset.item)))) {
      list.append(item);
    }
  }

  let asked = 0;
  async function runSearch() {
    const query = search.value.trim();
    const mine = ++asked;
    if (!query) {
      show(original.map((item) => item.dataset.item), null);
      status.textContent = "";
      return;
    }
    try {
      const url = form.dataset.itemsUrl + "?q=" + encodeURIComponent(query);
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (mine !== asked || !response.ok) return;
      const matches = await response.json();
      show(
        matches.map((m) => m.code),
        new Map(matches.map((m) => [m.code, m.score])),
      );
      status.textContent =
        matches.length === 0
          ? "No item matches “" + query + "”: it may be new to the catalogue."
          : matches.length + (matches.length === 1 ? " item matches" : " items match") +
            " “" + query + "”, closest first.";
    } catch (error) {
      // Offline: the "Search items" button still works.
    }
  }
  search.addEventListener("input", debounce(runSearch, 250));
  search.addEventListener("keydown", function (event) {
    if (event.key === "Enter") {
      event.preventDefault();
      runSearch();
    }
  });
})();
