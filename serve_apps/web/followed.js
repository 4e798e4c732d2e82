// The caregiver's grid: every followed patient's value, arrow and alert state, live.
import {$, api, patientEvents, patientPath} from "./api.js";
import {ARROWS, display, minutesAgo} from "./units.js";

const STALE_MIN = 15;
const grid = {tiles: new Map(), streams: []};

function tile(patient, onOpen) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "tile";
  button.dataset.patient = patient;
  button.innerHTML = '<span class="name"></span><span class="value">---</span>' +
    '<span class="arrow"></span><span class="age"></span><span class="alert"></span>';
  button.querySelector(".name").textContent = patient;
  button.addEventListener("click", () => onOpen(patient));
  return button;
}

function paint(patient) {
  const t = grid.tiles.get(patient);
  const last = t.last;
  const el = t.element;
  el.querySelector(".value").textContent = last ? display(last.sgv) : "---";
  el.querySelector(".arrow").textContent = last ? ARROWS[last.direction] || "" : "";
  el.querySelector(".age").textContent = last ? `${minutesAgo(last.date)} min ago` : "no readings";
  const alerts = [...t.alerts.values()];
  el.querySelector(".alert").textContent = alerts.map((a) => a.type.replaceAll("_", " ")).join(", ");
  el.classList.toggle("alerting", alerts.length > 0);
  el.classList.toggle("stale", !last || minutesAgo(last.date) >= STALE_MIN);
}

export async function showFollowed(patients, onOpen) {
  hideFollowed();
  $("followed").hidden = false;
  const list = $("followed-grid");
  list.replaceChildren();
  for (const patient of patients) {
    const element = tile(patient, onOpen);
    list.append(element);
    grid.tiles.set(patient, {element, last: null, alerts: new Map()});
    const [latest, alerts] = await Promise.all([
      api(patientPath(patient, "history?minutes=60")).catch(() => []),
      api(patientPath(patient, "alerts?limit=50")).catch(() => []),
    ]);
    const t = grid.tiles.get(patient);
    t.last = latest[0] || null;
    alerts.slice().reverse().forEach((a) => (a.state === "fired" ? t.alerts.set(a.type, a)
      : t.alerts.delete(a.type)));
    paint(patient);
    const events = patientEvents(patient);
    events.addEventListener("reading", (event) => {
      const e = JSON.parse(event.data);
      if (!t.last || e.date >= t.last.date) t.last = e;
      paint(patient);
    });
    events.addEventListener("alert", (event) => {
      const a = JSON.parse(event.data);
      if (a.state === "fired") t.alerts.set(a.type, a); else t.alerts.delete(a.type);
      paint(patient);
    });
    grid.streams.push(events);
  }
}

export function hideFollowed() {
  grid.streams.forEach((s) => s.close());
  grid.streams = [];
  grid.tiles.clear();
  $("followed").hidden = true;
}

export function repaintFollowed() {
  for (const patient of grid.tiles.keys()) paint(patient);
}
