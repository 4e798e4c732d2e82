// The clinician's cohort: each patient's consensus panel over the last 14 days, sortable, with
// a link to each one's report; the spread of time in range; and who needs attention (most time
// below 54 mg/dL first).
import {$, api} from "./api.js";
import {forget, reportUrl, withReportKey} from "./reports.js";

const COLUMNS = [
  ["patient_id", "Patient"], ["hours", "Hours"], ["in_range_70_180", "TIR %"],
  ["below_70", "TBR<70 %"], ["below_54", "TBR<54 %"], ["above_180", "TAR>180 %"],
  ["above_250", "TAR>250 %"], ["cv", "CV %"], ["gmi", "GMI %"],
];
const REPORT_DAYS = 14;
const ATTENTION_SHOWN = 10; // the rest are highlighted in the table
const table = {rows: [], key: "below_54", descending: true, reportKey: null, paint: null};

function header(onOpen) {
  const row = document.createElement("tr");
  for (const [key, label] of COLUMNS) {
    const th = document.createElement("th");
    th.scope = "col";
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = label;
    button.dataset.key = key;
    button.addEventListener("click", () => {
      table.descending = table.key === key ? !table.descending : key !== "patient_id";
      table.key = key;
      renderRows(onOpen);
    });
    th.append(button);
    row.append(th);
  }
  const report = document.createElement("th");
  report.scope = "col";
  report.textContent = "Report";
  row.append(report);
  $("cohort-table").querySelector("thead").replaceChildren(row);
}

function renderRows(onOpen) {
  const sign = table.descending ? -1 : 1;
  const rows = table.rows.slice().sort((a, b) =>
    (a[table.key] < b[table.key] ? -1 : a[table.key] > b[table.key] ? 1 : 0) * sign);
  $("cohort-table").querySelectorAll("th:has(button)").forEach((th) => {
    const key = th.querySelector("button").dataset.key;
    th.setAttribute("aria-sort", key !== table.key ? "none" : table.descending ? "descending" : "ascending");
  });
  const body = $("cohort-table").querySelector("tbody");
  body.replaceChildren(...rows.map((r) => {
    const tr = document.createElement("tr");
    for (const [key] of COLUMNS) {
      const td = document.createElement("td");
      if (key === "patient_id") {
        const open = document.createElement("button");
        open.type = "button";
        open.className = "link";
        open.textContent = r.patient_id;
        open.addEventListener("click", () => onOpen(r.patient_id));
        td.append(open);
      } else {
        td.textContent = String(r[key]);
      }
      tr.append(td);
    }
    const report = document.createElement("td");
    const link = document.createElement("a");
    link.className = "report";
    link.target = "_blank";
    link.rel = "noopener";
    link.dataset.patient = r.patient_id;
    link.textContent = "report";
    link.setAttribute("aria-label", `report of ${r.patient_id}`);
    if (table.reportKey) link.href = reportUrl(r.patient_id, "html", REPORT_DAYS, table.reportKey);
    report.append(link);
    tr.append(report);
    if (r.targets_missed.includes("tbr54") || r.targets_missed.includes("tir")) tr.className = "attention";
    return tr;
  }));
}

function renderSpread() {
  const bins = Array(10).fill(0);
  for (const r of table.rows) bins[Math.min(9, Math.floor(r.in_range_70_180 / 10))] += 1;
  const most = Math.max(1, ...bins);
  $("tir-spread").replaceChildren(...bins.map((n, k) => {
    const item = document.createElement("li");
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = `${(100 * n) / most}%`; // CSSOM, which the style-src policy allows
    const label = document.createElement("span");
    label.textContent = `${k * 10}-${k * 10 + 10}%: ${n}`;
    item.append(label, bar);
    return item;
  }));
}

function renderAttention(onOpen) {
  const flagged = table.rows.filter((r) => r.targets_missed.includes("tbr54") ||
    r.targets_missed.includes("tir")); // the API's order: most time below 54 first
  const items = flagged.slice(0, ATTENTION_SHOWN).map((r) => {
    const item = document.createElement("li");
    const open = document.createElement("button");
    open.type = "button";
    open.className = "link";
    open.textContent = r.patient_id;
    open.addEventListener("click", () => onOpen(r.patient_id));
    item.append(open, ` below 54: ${r.below_54}%, in range: ${r.in_range_70_180}%`);
    return item;
  });
  if (flagged.length > ATTENTION_SHOWN) {
    items.push(Object.assign(document.createElement("li"), {
      textContent: `and ${flagged.length - ATTENTION_SHOWN} more, highlighted in the table`}));
  }
  $("attention").replaceChildren(...(items.length ? items : [Object.assign(document.createElement("li"),
    {textContent: "Nobody: every patient meets the TIR and <54 targets."})]));
}

export async function showCohort(cohort, onOpen, onDenied) {
  $("cohort").hidden = false;
  $("cohort-title").textContent = `Cohort ${cohort}`;
  try {
    table.rows = await api(`api/v2/cohorts/${encodeURIComponent(cohort)}/summary`);
  } catch (err) {
    onDenied(err.message);
    return;
  }
  header(onOpen);
  renderRows(onOpen);
  renderSpread();
  renderAttention(onOpen);
  table.paint = (key) => {
    table.reportKey = key;
    $("cohort-table").querySelectorAll("a.report").forEach((a) => {
      a.href = reportUrl(a.dataset.patient, "html", REPORT_DAYS, key);
    });
  };
  withReportKey(table.paint).catch((err) => onDenied(err.message));
}

export function hideCohort() {
  if (table.paint) forget(table.paint);
  table.paint = null;
  $("cohort").hidden = true;
}
