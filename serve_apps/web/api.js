// The API as the page uses it: relative URLs (any route prefix works) and the signed-in token.
export const session = {token: null};

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

export async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: {"Authorization": `Bearer ${session.token}`, "Content-Type": "application/json",
      ...(options.headers || {})},
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new ApiError(response.status, body.description || body.message || response.statusText);
  }
  return body;
}

export const patientPath = (patient, rest) =>
  `api/v2/patients/${encodeURIComponent(patient)}/${rest}`;

// A patient's readings and alerts as Server-Sent Events (EventSource sends no headers, so the
// token goes in the query, as the API accepts it).
export const patientEvents = (patient) =>
  new EventSource(patientPath(patient, `stream?token=${encodeURIComponent(session.token)}`));

export const $ = (id) => document.getElementById(id);
