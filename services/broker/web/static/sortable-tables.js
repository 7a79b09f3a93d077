// Sortable tables, as progressive enhancement: each <table data-sortable> whose header cells
// have data-sort gets a button in each of them (styled by the NHS.UK frontend's sortable table
// rules); a click sorts the rows by that column, sets aria-sort on its header (and removes it
// from the others) and announces the new order. Without JavaScript the table keeps the server's
// order, shown by aria-sort="ascending" on the first column.
//
// Cells are compared by data-sort-value when they have one (the raw number, so "1,234.5" and
// "£9.50" sort as numbers), else by their text. Numeric columns sort largest first on the
// first click.
(function () {
  "use strict";

  const collator = new Intl.Collator("en-GB", { numeric: true, sensitivity: "base" });

  function value(row, index) {
    const cell = row.cells[index];
    return cell.dataset.sortValue !== undefined ? cell.dataset.sortValue : cell.textContent.trim();
  }

  function compare(a, b, numeric) {
    if (numeric) {
      const x = a === "" ? -Infinity : Number(a);
      const y = b === "" ? -Infinity : Number(b);
      return x - y;
    }
    return collator.compare(a, b);
  }

  function enhance(table) {
    const headers = Array.from(table.tHead.rows[0].cells);
    const body = table.tBodies[0];
    const status = document.createElement("div");
    status.className = "nhsuk-u-visually-hidden";
    status.setAttribute("role", "status");
    status.setAttribute("aria-live", "polite");
    status.setAttribute("aria-atomic", "true");
    table.before(status);
    if (table.caption) {
      const hint = document.createElement("span");
      hint.className = "nhsuk-u-visually-hidden";
      hint.textContent = " (column headings are buttons that sort the table)";
      table.caption.append(hint);
    }

    headers.forEach(function (header, index) {
      if (!("sort" in header.dataset)) return;
      const numeric = header.classList.contains("nhsuk-table__header--numeric");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "nhsuk-link";
      button.append(...header.childNodes);
      header.append(button);

      button.addEventListener("click", function () {
        const current = header.getAttribute("aria-sort");
        let direction = numeric ? "descending" : "ascending";
        if (current === "ascending") direction = "descending";
        if (current === "descending") direction = "ascending";
        const sign = direction === "ascending" ? 1 : -1;
        const rows = Array.from(body.rows);
        rows.sort(function (a, b) {
          return sign * compare(value(a, index), value(b, index), numeric);
        });
        body.append(...rows);
        for (const other of headers) other.removeAttribute("aria-sort");
        header.setAttribute("aria-sort", direction);
        status.textContent = "Sorted by " + button.textContent.trim() + ", " + direction;
      });
    });
  }

  document.querySelectorAll("table[data-sortable]").forEach(enhance);
})();
