// The dashboard's recent requests and audit log (loaded before dashboard.js, whose helpers they
// use at run time).
"use strict";

// ---------------------------------------------------------------------------------------------
// Recent requests

function addRequest(data) {
  requests.unshift(data);
  requests.length = Math.min(requests.length, REQUESTS_KEPT);
  renderRequests();
}

function renderRequests() {
  const rows = requests.map((request) => row([
    ["Time", time(request.timestamp)],
    ["Model", request.stream ? `${request.model} (stream)` : request.model],
    ["Served by", request.served_by || "nobody", request.served_by ? "" : "bad"],
    ["Fallback reason", request.fallback_reason || "—", request.fallback_reason ? "fallback" : ""],
    ["Status", String(request.status), request.status >= 400 ? "bad number" : "number"],
    ["Latency", latency(request.latency_ms), "number"],
  ]));
  $("requests").tBodies[0].replaceChildren(...rows);
  $("requests").hidden = rows.length === 0;
  $("requests-empty").hidden = rows.length !== 0;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const [label, text, className] of cells) {
    const td = document.createElement("td");
    td.dataset.label = label;
    td.textContent = text ?? "—";
    if (className) {
      td.className = className;
    }
    tr.append(td);
  }
  return tr;
}

// ---------------------------------------------------------------------------------------------
// Audit log

async function refreshAudit() {
  const note = $("audit-note");
  try {
    const body = await api("GET", `/api/endpoints/audit?limit=${AUDIT_LIMIT}`);
    renderAudit(body.entries || []);
    note.textContent = "";
  } catch (error) {
    reportPanelError(note, "The audit log", error);
  }
}

function renderAudit(entries) {
  const rows = entries.map((entry) => row([
    ["Time", time(entry.timestamp)],
    ["Actor", entry.actor],
    ["Operation", entry.operation],
    ["Endpoint", entry.model_type || "—"],
    ["Result", outcome(entry), entry.success === false ? "bad" : ""],
  ]));
  $("audit").tBodies[0].replaceChildren(...rows);
  $("audit").hidden = rows.length === 0;
  $("audit-empty").hidden = rows.length !== 0;
}

function outcome(entry) {
  const details = entry.details || {};
  if (entry.operation === "state_change" && typeof details.status === "string") {
    const hf = details.hf_state && details.hf_state !== details.status ? ` (${details.hf_state})` : "";
    return `now ${details.status}${hf}`;
  }
  if (entry.success === true) {
    return "ok";
  }
  if (entry.success === false) {
    return entry.error ? `failed: ${entry.error}` : "failed";
  }
  return entry.error || "—";
}

function reportPanelError(note, what, error) {
  if (!(error instanceof ApiError)) {
    return; // unreachable server: the banner already says so
  }
  if (error.status === 401 || error.status === 0) {
    return;
  }
  note.textContent = `${what} could not be read: ${error.message}`;
  note.dataset.tone = "error";
}
