// The history view: a period's consensus panel, its ambulatory glucose profile (AGP) and its
// daily profiles, in this browser's time zone, with the doctor's report one click away. The
// server takes the lake's readings, then the recent ones, and says how many came from each.
import {$, api, patientPath} from "./api.js";
import {forget, reportUrl, withReportKey} from "./reports.js";
import {targetBand} from "./charts.js";
import {redrawAfterResize, toggleGroup} from "./controls.js";
import {display, scale, unitLabel} from "./units.js";

const TZ = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
const view = {patient: null, days: 14, profile: null, charts: [], paint: null};

const percent = (v) => (v === null ? "-" : `${v.toFixed(1)} %`);
const PANEL = [
  ["in_range_70_180", "Time in range 70-180 mg/dL", percent],
  ["below_70", "Time below 70 mg/dL", percent], ["below_54", "Time below 54 mg/dL", percent],
  ["above_180", "Time above 180 mg/dL", percent], ["above_250", "Time above 250 mg/dL", percent],
  ["mean", "Mean glucose", (v) => (v === null ? "-" : `${display(v)} ${unitLabel()}`)],
  ["gmi", "GMI", percent], ["cv", "Glucose variability (CV)", percent],
  ["active_percent", "Sensor active", percent],
];

function endMs() {
  const day = $("history-end").value; // the chosen local day, to its end
  if (!day) return null;
  const [y, m, d] = day.split("-").map(Number);
  return new Date(y, m - 1, d + 1).getTime();
}

export async function showHistory(patient) {
  view.patient = patient;
  await load();
}

async function load() {
  const patient = view.patient;
  const end = endMs();
  const query = new URLSearchParams({days: String(view.days), tz: TZ});
  if (end !== null) query.set("end_ms", String(end));
  $("history-status").textContent = "Loading...";
  try {
    view.profile = await api(patientPath(patient, `profile?${query}`));
  } catch (err) {
    view.profile = null;
    clearCharts();
    $("history-panel").replaceChildren();
    $("history-status").textContent = err.message;
    return;
  }
  if (patient !== view.patient) return; // another patient was opened meanwhile
  render();
  if (view.paint) forget(view.paint);
  view.paint = (key) => {
    $("report-html").href = reportUrl(patient, "html", view.days, key);
    $("report-pdf").href = reportUrl(patient, "pdf", view.days, key);
  };
  withReportKey(view.paint).catch((err) => { $("history-status").textContent = err.message; });
}

function render() {
  const p = view.profile;
  if (!p) return;
  const from = new Date(p.start_ms).toLocaleDateString();
  const to = new Date(p.end_ms - 1).toLocaleDateString();
  const where = {lake: "the lake", hot: "recent readings", "lake+hot": "the lake and recent readings"};
  $("history-status").textContent = `${from} to ${to}: ${p.readings.toLocaleString()} readings ` +
    `on ${p.days_with_readings} days, from ${where[p.source]}` +
    (p.source === "lake+hot" ? ` (${p.lake_readings.toLocaleString()} + ${p.hot_readings.toLocaleString()})` : "") +
    `. Times of day are in ${TZ}.`;
  $("history-panel").replaceChildren(...PANEL.flatMap(([key, label, show]) => {
    const term = document.createElement("dt");
    term.textContent = label;
    const value = document.createElement("dd");
    value.textContent = show(p.panel[key]);
    return [term, value];
  }));
  const missed = p.targets.filter((t) => !t.met);
  $("history-missed").textContent = missed.length
    ? `Consensus targets missed: ${missed.map((t) => `${t.label} (target ${t.target})`).join("; ")}.`
    : "Every consensus target is met.";
  drawCharts();
}

function clearCharts() {
  view.charts.forEach((c) => c.destroy());
  view.charts = [];
  $("daily").replaceChildren();
}

function drawCharts() {
  clearCharts();
  const p = view.profile;
  const hours = p.agp.minute_of_day.map((m) => m / 60);
  const [p5, p25, p50, p75, p95] = p.agp.mgdl.map((col) => col.map((v) => (v === null ? null : scale(v))));
  const y = {range: [scale(40), scale(350)]};
  const hourAxis = {values: (u, ticks) => ticks.map((h) => `${String(h).padStart(2, "0")}:00`)};
  const agpEl = $("agp-chart");
  view.charts.push(new uPlot({
    width: agpEl.clientWidth || 600, height: 280, scales: {x: {time: false, range: [0, 24]}, y},
    axes: [{...hourAxis, incrs: [3, 6]}, {label: unitLabel()}],
    series: [{}, {label: "5th", stroke: "#9ab8d8"}, {label: "25th", stroke: "#4d7fb3"},
      {label: "median", stroke: "#0b3d91", width: 2}, {label: "75th", stroke: "#4d7fb3"},
      {label: "95th", stroke: "#9ab8d8"}],
    bands: [{series: [5, 1], fill: "rgba(11, 92, 173, 0.12)"}, {series: [4, 2], fill: "rgba(11, 92, 173, 0.3)"}],
    legend: {show: false}, hooks: {drawClear: [targetBand]},
  }, [hours, p5, p25, p50, p75, p95], agpEl));
  const daily = $("daily");
  const width = Math.max(140, Math.floor((daily.clientWidth || 600) / (daily.clientWidth > 700 ? 4 : 2)) - 12);
  for (const day of p.daily.slice().reverse()) {
    const figure = document.createElement("figure");
    const caption = document.createElement("figcaption");
    const [yy, mm, dd] = day.date.split("-").map(Number);
    caption.textContent = new Date(yy, mm - 1, dd).toLocaleDateString(undefined,
      {weekday: "short", day: "numeric", month: "short"});
    const chart = document.createElement("div");
    chart.setAttribute("role", "img");
    chart.setAttribute("aria-label", `Glucose on ${caption.textContent}`);
    figure.append(caption, chart);
    daily.append(figure);
    view.charts.push(new uPlot({
      width, height: 120, scales: {x: {time: false, range: [0, 24]}, y},
      axes: [{...hourAxis, incrs: [6, 12], size: 24}, {size: 36}],
      series: [{}, {stroke: "#1b1b1b"}], legend: {show: false}, cursor: {show: false},
      hooks: {drawClear: [targetBand]},
    }, [day.minute_of_day.map((m) => m / 60), day.glucose_mgdl.map((v) => (v === null ? null : scale(v)))], chart));
  }
}

export function hideHistory() {
  if (view.paint) forget(view.paint);
  view.paint = null;
  view.patient = null;
  view.profile = null;
  clearCharts();
}

export function rerenderHistory() {
  if (view.profile) render();
}

export function wireHistoryView() {
  toggleGroup(".period button", (button) => {
    view.days = Number(button.dataset.days);
    if (view.patient) load();
  });
  $("history-end").addEventListener("change", () => { if (view.patient) load(); });
  redrawAfterResize(() => { if (view.profile) drawCharts(); });
}
