// cgm-ray web app: sign-in by token, then a patient's live glucose, chart and alerts.
// Every URL is relative, so the page works under any route prefix; the API enforces what a
// token may read, the page only shows what the API answers.
"use strict";

const MGDL_PER_MMOL = 18.0182;
const STALE_MIN = 15;
const TARGET_MGDL = [70, 180];
const AR2 = [-0.723, 1.716]; // Nightscout's AR2 coefficients on ln(bg / 140), 5-min steps
const ARROWS = {DoubleUp: "⇈", SingleUp: "↑", FortyFiveUp: "↗", Flat: "→", FortyFiveDown: "↘",
  SingleDown: "↓", DoubleDown: "⇊", "NOT COMPUTABLE": "-", "RATE OUT OF RANGE": "⇕"};
const $ = (id) => document.getElementById(id);

const state = {
  token: null, patient: null, hours: 3, units: localStorage.getItem("units") || "mg/dl",
  entries: [], treatments: [], alerts: new Map(), chart: null, events: null,
};

// -- the API ---------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: {"Authorization": `Bearer ${state.token}`, "Content-Type": "application/json",
      ...(options.headers || {})},
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new ApiError(response.status, body.description || body.message || response.statusText);
  }
  return body;
}

const patientPath = (rest) => `api/v2/patients/${encodeURIComponent(state.patient)}/${rest}`;

// -- units and text --------------------------------------------------------------------------
function display(mgdl) {
  return state.units === "mmol" ? (mgdl / MGDL_PER_MMOL).toFixed(1) : String(Math.round(mgdl));
}
const unitLabel = () => (state.units === "mmol" ? "mmol/L" : "mg/dL");
const scale = (mgdl) => (state.units === "mmol" ? mgdl / MGDL_PER_MMOL : mgdl);

function minutesAgo(ms) { return Math.max(0, Math.floor((Date.now() - ms) / 60000)); }

// -- sign-in ---------------------------------------------------------------------------------
function tokenFromLink() {
  const url = new URL(window.location.href);
  const token = url.searchParams.get("token");
  if (token) {
    url.searchParams.delete("token"); // the token stays in this tab's storage, not the history
    window.history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
  return token;
}

function showSignIn(message) {
  sessionStorage.removeItem("token");
  state.token = null;
  if (state.events) state.events.close();
  $("patient").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-message").textContent = message || "";
}

async function signIn(token) {
  state.token = token;
  let who;
  try {
    who = (await api("api/v1/status.json")).authorized.sub;
  } catch (err) {
    showSignIn(err.status === 401 ? `This token is not accepted: ${err.message}` : err.message);
    return;
  }
  sessionStorage.setItem("token", token);
  const [role, ...rest] = who.split(":");
  const subject = rest.join(":");
  const asked = new URL(window.location.href).searchParams.get("patient");
  state.patient = role === "admin" || role === "clinician" ? asked : subject;
  if (!state.patient) {
    showSignIn(`A ${role} token covers several patients: add ?patient=ID to the link.`);
    return;
  }
  $("sign-in").hidden = true;
  $("sign-out").hidden = false;
  $("patient").hidden = false;
  await loadPatient();
}

// -- the patient view ------------------------------------------------------------------------
async function loadPatient() {
  try {
    const since = new Date(Date.now() - 24 * 3600e3).toISOString();
    const [entries, treatments, alerts] = await Promise.all([
      api(patientPath(`history?minutes=${24 * 60}`)),
      api(`api/v1/treatments.json?count=1000&patient=${encodeURIComponent(state.patient)}` +
          `&find[created_at][$gte]=${encodeURIComponent(since)}`)
        .catch(() => []), // a role that may not read treatments still sees glucose
      api(patientPath("alerts?limit=200")),
    ]);
    state.entries = entries.map((e) => ({date: e.date, sgv: e.sgv, direction: e.direction}))
      .sort((a, b) => a.date - b.date);
    state.treatments = treatments;
    state.alerts = new Map();
    alerts.slice().reverse().forEach(applyAlert);
  } catch (err) {
    if (err.status === 401 || err.status === 403) { showSignIn(err.message); return; }
    throw err;
  }
  render();
  listen();
}

function listen() {
  if (state.events) state.events.close();
  const url = patientPath(`stream?token=${encodeURIComponent(state.token)}`);
  state.events = new EventSource(url);
  state.events.addEventListener("reading", (event) => {
    const e = JSON.parse(event.data);
    if (!state.entries.some((x) => x.date === e.date)) {
      state.entries.push({date: e.date, sgv: e.sgv, direction: e.direction});
      state.entries.sort((a, b) => a.date - b.date);
    }
    render();
  });
  state.events.addEventListener("alert", (event) => {
    const alert = JSON.parse(event.data);
    applyAlert(alert);
    if (alert.state === "fired" && alert.urgent) alarm();
    renderAlerts();
  });
}

function applyAlert(alert) {
  if (alert.state === "fired") state.alerts.set(alert.type, alert);
  else state.alerts.delete(alert.type);
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
  const last = state.entries[state.entries.length - 1];
  const box = $("now");
  $("unit-label").textContent = unitLabel();
  if (!last) {
    $("value").textContent = "---";
    $("arrow").textContent = "";
    $("delta").textContent = "no readings yet";
    $("age").textContent = "";
    return;
  }
  const previous = state.entries[state.entries.length - 2];
  $("value").textContent = display(last.sgv);
  $("arrow").textContent = ARROWS[last.direction] || "";
  $("arrow").setAttribute("aria-label", `trend ${last.direction || "unknown"}`);
  if (previous && last.date - previous.date <= 10 * 60000) {
    const delta = scale(last.sgv) - scale(previous.sgv);
    const text = state.units === "mmol" ? delta.toFixed(1) : String(Math.round(delta));
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
  const active = [...state.alerts.values()].sort((a, b) => b.urgent - a.urgent);
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
  const from = Date.now() - state.hours * 3600e3;
  const shown = state.entries.filter((e) => e.date >= from);
  const forecast = ar2Forecast(state.entries, 6);
  const treatments = state.treatments.filter((t) => t.date >= from);
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
  if (state.chart) state.chart.destroy();
  state.chart = new uPlot({
    width, height: 300, scales: {y: {range: [scale(40), scale(300)]}},
    axes: [{}, {label: unitLabel()}],
    series: [{}, {label: "glucose", stroke: "#1b1b1b", points: {show: true, size: 4}},
      {label: "forecast", stroke: "#5c5c5c", dash: [6, 4], points: {show: false}},
      {label: "bolus", stroke: "#0b5cad", width: 0, points: {show: true, size: 9}},
      {label: "carbs", stroke: "#8a5a00", width: 0, points: {show: true, size: 9}}],
    legend: {show: false},
    hooks: {drawClear: [(u) => {
      const top = u.valToPos(scale(TARGET_MGDL[1]), "y", true);
      const bottom = u.valToPos(scale(TARGET_MGDL[0]), "y", true);
      u.ctx.fillStyle = "rgba(27, 110, 32, 0.12)";
      u.ctx.fillRect(u.bbox.left, top, u.bbox.width, bottom - top);
    }]},
  }, data, el);
}

// -- wiring ----------------------------------------------------------------------------------
function start() {
  $("units").value = state.units;
  $("units").addEventListener("change", () => {
    state.units = $("units").value;
    localStorage.setItem("units", state.units);
    if (state.patient && !$("patient").hidden) render();
  });
  $("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn($("token").value.trim());
  });
  $("sign-out").addEventListener("click", () => showSignIn("Signed out."));
  document.querySelectorAll(".ranges button").forEach((button) => {
    button.addEventListener("click", () => {
      state.hours = Number(button.dataset.hours);
      document.querySelectorAll(".ranges button").forEach((b) =>
        b.setAttribute("aria-pressed", String(b === button)));
      renderChart();
    });
  });
  $("snooze").addEventListener("click", async () => { // silences every active alert, as Nightscout
    try {
      for (const type of [...state.alerts.keys()]) {
        await api(patientPath("alerts/snooze"), {method: "POST", body: JSON.stringify({type, minutes: 30})});
        state.alerts.delete(type);
      }
      renderAlerts();
    } catch (err) {
      $("alert-text").textContent = `Snooze failed: ${err.message}`;
    }
  });
  setInterval(() => { if (state.patient && !$("patient").hidden) renderNow(); }, 15000);
  let resizing = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => { if (state.chart) renderChart(); }, 100);
  });
  const token = tokenFromLink() || sessionStorage.getItem("token");
  if (token) signIn(token); else showSignIn("");
}

document.addEventListener("DOMContentLoaded", start);
