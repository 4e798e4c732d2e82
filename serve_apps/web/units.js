// Glucose units: mg/dL inside, mmol/L on screen if the user chose it (kept in this browser).
export const MGDL_PER_MMOL = 18.0182;
export const settings = {units: localStorage.getItem("units") || "mg/dl"};

export function setUnits(units) {
  settings.units = units;
  localStorage.setItem("units", units);
}

export const scale = (mgdl) => (settings.units === "mmol" ? mgdl / MGDL_PER_MMOL : mgdl);
export const unitLabel = () => (settings.units === "mmol" ? "mmol/L" : "mg/dL");
export const display = (mgdl) =>
  (settings.units === "mmol" ? (mgdl / MGDL_PER_MMOL).toFixed(1) : String(Math.round(mgdl)));
export const ARROWS = {DoubleUp: "⇈", SingleUp: "↑", FortyFiveUp: "↗", Flat: "→",
  FortyFiveDown: "↘", SingleDown: "↓", DoubleDown: "⇊", "NOT COMPUTABLE": "-",
  "RATE OUT OF RANGE": "⇕"};
export const minutesAgo = (ms) => Math.max(0, Math.floor((Date.now() - ms) / 60000));
