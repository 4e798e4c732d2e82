// Links to the doctor's report. A report opens in a new tab, which sends no Authorization
// header, so its link carries a report key: it opens reports only and lasts 10 minutes. Keys
// are renewed every 4 minutes while links are on screen, so a link on screen always works.
import {api, patientPath, session} from "./api.js";
import {unitLabel} from "./units.js";

const RENEW_MS = 4 * 60e3;
const key = {value: null, token: null, fetched: 0, timer: null};
const shown = new Set(); // functions that rewrite the report links on screen

async function reportKey() {
  if (!key.value || key.token !== session.token || Date.now() - key.fetched > RENEW_MS / 2) {
    const answer = await api("api/v2/report-keys", {method: "POST"});
    Object.assign(key, {value: answer.key, token: session.token, fetched: Date.now()});
  }
  return key.value;
}

// The report in the units chosen on this page (links are repainted when they change).
export const reportUrl = (patient, format, days, keyValue) =>
  patientPath(patient, `report.${format}?days=${days}&units=${encodeURIComponent(unitLabel())}` +
    `&key=${encodeURIComponent(keyValue)}`);

// Calls ``paint(key)`` now and after each renewal, until ``forget(paint)``.
export async function withReportKey(paint) {
  shown.add(paint);
  paint(await reportKey());
  if (!key.timer) {
    key.timer = setInterval(async () => {
      if (!shown.size) return;
      try {
        const value = await reportKey();
        shown.forEach((p) => p(value));
      } catch (err) { /* signed out or offline: the links stay as they are */ }
    }, RENEW_MS);
  }
}

// Report links on screen painted again (after the units change).
export function repaintReportLinks() {
  if (key.value) shown.forEach((paint) => paint(key.value));
}

export function forget(paint) {
  shown.delete(paint);
}
