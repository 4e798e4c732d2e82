// cgm-ray web app: sign-in by token, then the view the token's role calls for. Every URL is
// relative, so the page works under any route prefix; the API enforces what a token may read,
// the page only shows what the API answers.
import {$, api, session} from "./api.js";
import {hideCohort, showCohort} from "./clinician.js";
import {hideFollowed, repaintFollowed, showFollowed} from "./followed.js";
import {wireHistoryView} from "./history.js";
import {hidePatient, rerender, showPatient, wirePatientView} from "./patient.js";
import {repaintReportLinks} from "./reports.js";
import {setUnits, settings} from "./units.js";

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
  session.token = null;
  hidePatient();
  hideFollowed();
  hideCohort();
  $("sign-out").hidden = true;
  $("back").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-message").textContent = message || "";
}

async function signIn(token) {
  session.token = token;
  let who;
  try {
    who = (await api("api/v1/status.json")).authorized.sub;
  } catch (err) {
    showSignIn(err.status === 401 ? `This token is not accepted: ${err.message}` : err.message);
    return;
  }
  sessionStorage.setItem("token", token);
  $("sign-in").hidden = true;
  $("sign-out").hidden = false;
  const [role, ...rest] = who.split(":");
  const subject = rest.join(":");
  const asked = new URL(window.location.href).searchParams.get("patient");
  const patients = role === "caregiver" ? subject.split(",") : [subject];
  if (role === "clinician" && !asked) {
    showCohort(subject, (p) => openPatient(p, true), showSignIn);
  } else if (role === "admin" || role === "clinician") {
    if (asked) openPatient(asked, false);
    else showSignIn("An admin token covers every patient: add ?patient=ID to the link.");
  } else if (patients.length > 1 && !asked) {
    showFollowed(patients, (p) => openPatient(p, true));
  } else {
    openPatient(asked || patients[0], false);
  }
}

function openPatient(patient, fromGrid) {
  hideFollowed();
  hideCohort();
  $("back").hidden = !fromGrid;
  showPatient(patient, showSignIn);
}

function start() {
  $("units").value = settings.units;
  $("units").addEventListener("change", () => {
    setUnits($("units").value);
    rerender();
    repaintFollowed();
    repaintReportLinks();
  });
  $("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn($("token").value.trim());
  });
  $("sign-out").addEventListener("click", () => showSignIn("Signed out."));
  $("back").addEventListener("click", () => {
    hidePatient();
    signIn(session.token);
  });
  wirePatientView();
  wireHistoryView();
  const token = tokenFromLink() || sessionStorage.getItem("token");
  if (token) signIn(token); else showSignIn("");
}

document.addEventListener("DOMContentLoaded", start);
