// The patient view: the current value, its trend and age, a live chart and the alerts.
import {$, api, patientEvents, patientPath} from "./api.js";
import {TARGET_MGDL, targetBand} from "./charts.js";
import {redrawAfterResize, toggleGroup} from "./controls.js";
import {hideHistory, rerenderHistory, showHistory} from "./history.js";
import {ARROWS, display, minutesAgo, scale, settings, unitLabel} from "./units.js";

const STALE_MIN = 15;
const AR2 = [-0.723, 1.716]; // Nightscout's AR2 coefficients on ln(bg / 140), 5-min steps

const view = {patient: null, hours: 3, entries: [], treatments: [], alerts: new Map(),
  chart: null, events: null};

export async function showPatient(patient, onDenied) {
  view.patient = patient;
  $("patient").hidden = false;
  try {
    const since = new Date(Date.now() - 24 * 3600e3).toISOString();
    const [entries, treatments, alerts] = await Promise.all([
      api(patientPath(view.patient, `history?minutes=${24 * 60}`)),
      api(`api/v1/treatments.json?count=1000&patient=${encodeURIComponent(view.patient)}` +
          `&find[created_at][$gte]=${encodeURIComponent(since)}`)
        .catch(() => []), // a role that may not read treatments still sees glucose
      api(patientPath(view.patient, "alerts?limit=200")),
    ]);
    view.entries = entries.map((e) => ({date: e.date, sgv: e.sgv, direction: e.direction}))
      .sort((a, b) => a.date - b.date);
    view.treatments = treatments;
    view.alerts = new Map();
    alerts.slice().reverse().forEach(applyAlert);
  } catch (err) {
    if (err.status === 401 || err.status === 403) { onDenied(err.message); return; }
    throw err;
  }
  render();
  listen();
  showHistory(patient);
}

function listen() {
  if (view.events) view.events.close();
  view.events = patientEvents(view.patient);
  view.events.addEventListener("reading", (event) => {
    const e = JSON.parse(event.data);
    if (!view.entries.some((x) => x.date === e.date)) {
      view.entries.push({date: e.date, sgv: e.sgv, direction: e.direction});
      view.entries.sort((a, b) => a.date - b.date);
    }
    render();
  });
  view.events.addEventListener("alert", (event) => {
    const alert = JSON.parse(event.data);
    applyAlert(alert);
    if (alert.state === "fired" && alert.urgent) alarm();
    renderAlerts();
  });
}

function applyAlert(alert) {
  if (alert.state === "fired") view.alerts.set(alert.type, alert);
  else view.alerts.delete(alert.type);
}

function alarm() {
  if (navigator.vibrate) navigator.vibrate([400, 200, 400]);
  try {
    const audio = new AudioContext(); // browsers allow sound only after a user gesture
    const tone = audio.createOscillator();
    tone.frequency.value = 880;
    tone.connect(audio.destination);
    tone.start();
    tone.stop(audio.currentTime + 0.6);
  } catch (err) { /* no sound here: the banner still shows */ }
}

function render() {
  renderNow();
  renderAlerts();
  renderChart();
}

function renderNow() {
  const last = view.entries[view.entries.length - 1];
  const box = $("now");
  $("unit-label").textContent = unitLabel();
  if (!last) {
    $("value").textContent = "---";
    $("arrow").textContent = "";
    $("arrow-text").textContent = "";
    $("delta").textContent = "no readings yet";
    $("age").textContent = "";
    return;
  }
  const previous = view.entries[view.entries.length - 2];
  $("value").textContent = display(last.sgv);
  $("arrow").textContent = ARROWS[last.direction] || "";
  $("arrow-text").textContent = `trend ${last.direction || "unknown"}`;
  if (previous && last.date - previous.date <= 10 * 60000) {
    const delta = scale(last.sgv) - scale(previous.sgv);
    const text = settings.units === "mmol" ? delta.toFixed(1) : String(Math.round(delta));
    $("delta").textContent = `${delta >= 0 ? "+" : ""}${text} ${unitLabel()}`;
  } else {
    $("delta").textContent = "";
  }
  const age = minutesAgo(last.date);
  $("age").textContent = age === 0 ? "just now" : `${age} min ago`;
  box.className = "now " + (age >= STALE_MIN ? "stale" : last.sgv < TARGET_MGDL[0] ? "low"
    : last.sgv > TARGET_MGDL[1] ? "high" : "in-range");
}

function renderAlerts() {
  const active = [...view.alerts.values()].sort((a, b) => b.urgent - a.urgent);
  $("alert-banner").hidden = active.length === 0;
  if (active.length) {
    const a = active[0];
    const more = active.length > 1 ? ` (+${active.length - 1} more)` : "";
    $("alert-text").textContent = `${a.type.replaceAll("_", " ")}` +
      (a.glucose_mgdl ? `: ${display(a.glucose_mgdl)} ${unitLabel()}` : "") + more;
  }
}

function ar2Forecast(entries, steps) {
  if (entries.length < 2) return [];
  const [a, b] = entries.slice(-2);
  if (b.date - a.date > 10 * 60000) return [];
  let y0 = Math.log(a.sgv / 140), y1 = Math.log(b.sgv / 140);
  const out = [];
  for (let k = 1; k <= steps; k++) {
    [y0, y1] = [y1, AR2[0] * y0 + AR2[1] * y1];
    out.push({date: b.date + k * 5 * 60000, sgv: Math.min(400, Math.max(36, 140 * Math.exp(y1)))});
  }
  return out;
}

function renderChart() {
  const from = Date.now() - view.hours * 3600e3;
  const shown = view.entries.filter((e) => e.date >= from);
  const forecast = ar2Forecast(view.entries, 6);
  const treatments = view.treatments.filter((t) => t.date >= from);
  const times = [...new Set([...shown, ...forecast, ...treatments].map((x) => x.date))]
    .sort((a, b) => a - b);
  const at = (list, pick) => {
    const byTime = new Map(list.map((x) => [x.date, pick(x)]));
    return times.map((t) => (byTime.has(t) ? byTime.get(t) : null));
  };
  const floor = scale(45);
  const data = [times.map((t) => t / 1000), at(shown, (e) => scale(e.sgv)),
    at(forecast, (e) => scale(e.sgv)),
    at(treatments.filter((t) => t.insulin), () => floor),
    at(treatments.filter((t) => t.carbs), () => floor + scale(10))];
  const el = $("chart");
  const width = el.clientWidth || 600;
  if (view.chart) view.chart.destroy();
  view.chart = new uPlot({
    width, height: 300, scales: {y: {range: [scale(40), scale(300)]}},
    axes: [{}, {label: unitLabel()}],
    series: [{}, {label: "glucose", stroke: "#1b1b1b", points: {show: true, size: 4}},
      {label: "forecast", stroke: "#5c5c5c", dash: [6, 4], points: {show: false}},
      {label: "bolus", stroke: "#0b5cad", width: 0, points: {show: true, size: 9}},
      {label: "carbs", stroke: "#8a5a00", width: 0, points: {show: true, size: 9}}],
    legend: {show: false},
    hooks: {drawClear: [targetBand]},
  }, data, el);
}

export function hidePatient() {
  if (view.events) view.events.close();
  view.events = null;
  view.patient = null;
  hideHistory();
  $("patient").hidden = true;
}

export function rerender() {
  if (view.patient) render();
  rerenderHistory();
}

export function wirePatientView() {
  toggleGroup(".ranges button", (button) => {
    view.hours = Number(button.dataset.hours);
    renderChart();
  });
  $("snooze").addEventListener("click", async () => { // silences every active alert, as Nightscout
    try {
      for (const type of [...view.alerts.keys()]) {
        await api(patientPath(view.patient, "alerts/snooze"),
          {method: "POST", body: JSON.stringify({type, minutes: 30})});
        view.alerts.delete(type);
      }
      renderAlerts();
    } catch (err) {
      $("alert-text").textContent = `Snooze failed: ${err.message}`;
    }
  });
  setInterval(() => { if (view.patient) renderNow(); }, 15000);
  redrawAfterResize(() => { if (view.chart) renderChart(); });
}
