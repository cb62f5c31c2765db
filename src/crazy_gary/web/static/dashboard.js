// The crazy-gary dashboard: the REST API is its only data source, the event stream keeps it live.
// Server data only ever reaches the page through textContent and attributes, never as markup.
"use strict";

const KEY_STORAGE = "crazy-gary-key";
const AUDIT_LIMIT = 20;
const REQUESTS_KEPT = 50;
const FIGURES_EVERY_MS = 30_000; // costs and usage; both also after each snapshot and operation
// Three heartbeats missed: a stream that is still open but silent is dead (a lost network path).
const SILENT_STREAM_MS = 45_000;
// A reconnect quicker than this (the server ended one stream, the next one answers) shows no banner.
const BANNER_DELAY_MS = 1_000;
const BACKOFF_MS = [500, 1_000, 2_000, 4_000, 5_000];
const STATES = new Set(["running", "starting", "stopping", "sleeping", "error", "unknown"]);
const SVG = "http://www.w3.org/2000/svg";

const $ = (id) => document.getElementById(id);

// key -> {data: endpoint object, receivedAt: performance.now() when it arrived, card, pending}
const endpoints = new Map();
let requests = []; // newest first
let session = null;

// ---------------------------------------------------------------------------------------------
// The key and the session that uses it

class ApiError extends Error {
  constructor(status, message, retryAfterMs = 0) {
    super(message);
    this.status = status;
    this.retryAfterMs = retryAfterMs;
  }
}

class Session {
  constructor(key) {
    this.key = key;
    this.controller = new AbortController();
    this.timers = [];
  }

  get closed() {
    return this.controller.signal.aborted;
  }

  close() {
    this.controller.abort();
    this.timers.forEach((timer) => clearInterval(timer));
  }
}

function start() {
  const key = window.sessionStorage.getItem(KEY_STORAGE);
  if (!key) {
    askForKey("Enter an API key to see the endpoints.");
    return;
  }
  stop();
  const current = new Session(key);
  session = current;
  $("key-form").hidden = true;
  $("dashboard").hidden = false;
  $("change-key").hidden = false;
  setConnection("reconnecting", "connecting…");
  follow(current); // its first snapshot also reads the audit log, the costs and the usage
  current.timers.push(setInterval(refreshFigures, FIGURES_EVERY_MS));
}

function stop() {
  if (session) {
    session.close();
    session = null;
  }
  hideBanner();
  setConnection("idle", "not connected");
}

function askForKey(reason) {
  stop();
  window.sessionStorage.removeItem(KEY_STORAGE);
  $("dashboard").hidden = true;
  $("change-key").hidden = true;
  $("key-reason").textContent = reason;
  $("key-form").hidden = false;
  $("key-input").value = "";
  $("key-input").focus();
}

function keyRefused(current, body) {
  if (current !== session) {
    return;
  }
  const why = body && body.error ? body.error : "The key was refused.";
  askForKey(`${why} Enter another key.`);
}

function submitKey(event) {
  event.preventDefault();
  const key = $("key-input").value.trim();
  if (!key) {
    return;
  }
  window.sessionStorage.setItem(KEY_STORAGE, key);
  $("key-input").value = "";
  start();
}

// ---------------------------------------------------------------------------------------------
// Calls to the REST API

function authHeaders(current, accept) {
  return { Authorization: `Bearer ${current.key}`, Accept: accept };
}

async function readJson(response) {
  try {
    return await response.json();
  } catch {
    return null;
  }
}

function retryAfterMs(response) {
  const seconds = Number(response.headers.get("Retry-After"));
  return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 0;
}

async function failure(response) {
  const body = await readJson(response);
  const message = body && body.error ? body.error : `The server answered ${response.status}.`;
  return new ApiError(response.status, message, retryAfterMs(response));
}

async function api(method, path) {
  const current = session;
  if (!current) {
    throw new ApiError(0, "No key.");
  }
  const response = await fetch(path, {
    method,
    headers: authHeaders(current, "application/json"),
    cache: "no-store",
    signal: current.controller.signal,
  });
  if (response.status === 401) {
    keyRefused(current, await readJson(response));
    throw new ApiError(401, "The key was refused.");
  }
  if (!response.ok) {
    throw await failure(response);
  }
  return response.json();
}

// ---------------------------------------------------------------------------------------------
// The event stream: fetch() (EventSource cannot send the key) and a small SSE parser

async function follow(current) {
  let attempt = 0;
  while (!current.closed) {
    let wait = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)];
    let problem = "The connection to crazy-gary was lost; reconnecting…";
    try {
      await stream(current, () => {
        attempt = 0;
      });
    } catch (error) {
      if (current.closed) {
        return;
      }
      if (error instanceof ApiError) {
        problem = `Live updates failed: ${error.message} Retrying…`;
        wait = Math.max(wait, error.retryAfterMs);
      } else if (!(error instanceof DOMException)) {
        problem = "crazy-gary cannot be reached; reconnecting…";
      }
    }
    if (current.closed) {
      return;
    }
    disconnected(current, problem);
    attempt += 1;
    await pause(wait, current.controller.signal);
  }
}

async function stream(current, onSnapshot) {
  const silence = new AbortController();
  const response = await fetch("/api/endpoints/events", {
    headers: authHeaders(current, "text/event-stream"),
    cache: "no-store",
    signal: AbortSignal.any([current.controller.signal, silence.signal]),
  });
  if (response.status === 401) {
    keyRefused(current, await readJson(response));
    current.close();
    return;
  }
  if (!response.ok || !response.body) {
    throw await failure(response);
  }
  let watchdog = setTimeout(() => silence.abort(), SILENT_STREAM_MS);
  const alive = () => {
    clearTimeout(watchdog);
    watchdog = setTimeout(() => silence.abort(), SILENT_STREAM_MS);
  };
  try {
    await readEvents(response.body, alive, (name, text) => {
      if (current.closed) {
        return;
      }
      if (name === "snapshot") {
        onSnapshot();
        connected(current);
      }
      dispatch(name, text);
    });
  } finally {
    clearTimeout(watchdog);
  }
}

// Calls onEvent(name, data) per event; comments (heartbeats) and unknown fields only keep it alive.
async function readEvents(body, onBytes, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = { name: "", data: [] };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) {
      return;
    }
    onBytes();
    buffer += value;
    const lines = buffer.split("\n");
    buffer = lines.pop();
    for (const raw of lines) {
      event = parseLine(raw.endsWith("\r") ? raw.slice(0, -1) : raw, event, onEvent);
    }
  }
}

function parseLine(line, event, onEvent) {
  if (line === "") {
    if (event.data.length) {
      onEvent(event.name || "message", event.data.join("\n"));
    }
    return { name: "", data: [] };
  }
  if (line.startsWith(":")) {
    return event;
  }
  const colon = line.indexOf(":");
  const field = colon === -1 ? line : line.slice(0, colon);
  let value = colon === -1 ? "" : line.slice(colon + 1);
  if (value.startsWith(" ")) {
    value = value.slice(1);
  }
  if (field === "event") {
    event.name = value;
  } else if (field === "data") {
    event.data.push(value);
  }
  return event;
}

const handlers = {
  snapshot: applySnapshot,
  state: (data) => applyEndpoint(data.model_type, data.endpoint),
  countdown: (data) => applyEndpoint(data.model_type, data.endpoint),
  operation: applyOperation,
  request: addRequest,
};

function dispatch(name, text) {
  const handler = handlers[name];
  if (!handler) {
    return;
  }
  let data;
  try {
    data = JSON.parse(text);
  } catch {
    return; // one malformed event must not stop the stream
  }
  handler(data);
}

function pause(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}

// ---------------------------------------------------------------------------------------------
// Connection state: the banner (role=alert) while the stream is down, cleared by a new snapshot

let bannerTimer = null;
let lastProblem = "";

function connected(current) {
  if (current !== session) {
    return;
  }
  clearTimeout(bannerTimer);
  bannerTimer = null;
  hideBanner();
  setConnection("live", "live");
}

function disconnected(current, problem) {
  if (current !== session) {
    return;
  }
  setConnection("reconnecting", "reconnecting…");
  lastProblem = problem;
  if (!$("banner").hidden) {
    showBanner(problem);
  } else if (bannerTimer === null) {
    bannerTimer = setTimeout(() => {
      bannerTimer = null;
      if (current === session && !current.closed) {
        showBanner(lastProblem);
      }
    }, BANNER_DELAY_MS);
  }
}

function showBanner(text) {
  $("banner").textContent = text;
  $("banner").hidden = false;
}

function hideBanner() {
  clearTimeout(bannerTimer);
  bannerTimer = null;
  $("banner").hidden = true;
  $("banner").textContent = "";
}

function setConnection(state, text) {
  document.body.dataset.connection = state; // while reconnecting, what the cards show may be stale
  const element = $("connection");
  element.dataset.state = state;
  element.textContent = text;
}

// ---------------------------------------------------------------------------------------------
// Endpoint cards

function applySnapshot(data) {
  const seen = new Set(Object.keys(data.endpoints || {}));
  for (const [key, entry] of endpoints) {
    if (!seen.has(key)) {
      entry.card.remove();
      endpoints.delete(key);
    }
  }
  for (const [key, endpoint] of Object.entries(data.endpoints || {})) {
    applyEndpoint(key, endpoint);
  }
  requests = (data.requests || []).slice(-REQUESTS_KEPT).reverse();
  renderRequests();
  refreshAudit();
  refreshFigures();
}

function applyEndpoint(key, endpoint) {
  if (typeof key !== "string" || !endpoint) {
    return;
  }
  let entry = endpoints.get(key);
  if (!entry) {
    entry = { card: createCard(key), pending: false };
    endpoints.set(key, entry);
  }
  entry.data = endpoint;
  entry.receivedAt = performance.now();
  renderCard(entry);
}

function createCard(key) {
  const card = $("card-template").content.firstElementChild.cloneNode(true);
  card.dataset.endpoint = key;
  card.querySelector(".card-title").textContent = key;
  card.querySelector(".card-name").textContent = `${key} is `;
  const wake = card.querySelector(".wake");
  const sleep = card.querySelector(".sleep");
  wake.setAttribute("aria-label", `Wake ${key}`);
  sleep.setAttribute("aria-label", `Sleep ${key}`);
  wake.addEventListener("click", () => operate("wake", key));
  sleep.addEventListener("click", () => operate("sleep", key));
  insertSorted(card, key);
  return card;
}

function insertSorted(card, key) {
  const cards = $("cards");
  const after = [...cards.children].find((other) => other.dataset.endpoint.localeCompare(key) > 0);
  cards.insertBefore(card, after || null);
}

function renderCard(entry) {
  const { card, data } = entry;
  const state = STATES.has(data.status) ? data.status : "unknown";
  card.dataset.state = state;
  const word = card.querySelector(".state");
  if (word.textContent !== state) {
    word.textContent = state; // only a real change, so the live region speaks once
  }
  word.className = `state state-${state}`;
  card.querySelector(".model").textContent = [data.model, data.instance].filter(Boolean).join(" · ");
  const circuit = card.querySelector(".circuit");
  circuit.textContent = (data.circuit || "—").replace("_", " ");
  circuit.dataset.circuit = data.circuit || "";
  card.querySelector(".price").textContent = typeof data.price_per_hour === "number"
    ? `${dollars(data.price_per_hour)} / h`
    : "—";
  card.querySelector(".load").textContent = `${data.in_flight ?? 0} / ${data.pending ?? 0}`;
  card.querySelector(".hf-line").textContent = hfLine(data);
  const error = card.querySelector(".card-error");
  error.textContent = problem(data, state);
  error.hidden = !error.textContent;
  renderButtons(entry, state);
  renderCountdown(entry);
}

// What Hugging Face says of the endpoint: its state and message, and its own idle timer.
function hfLine(data) {
  const parts = [];
  if (data.hf_state) {
    parts.push(`HF: ${data.hf_state}${data.hf_message ? ` — ${data.hf_message}` : ""}`);
  }
  if (typeof data.hf_scale_to_zero_timeout === "number") {
    parts.push(`HF idle timer ${data.hf_scale_to_zero_timeout} min`);
  } else if (data.managed && data.hf_state) {
    parts.push("HF idle timer off");
  }
  return parts.join(" · ");
}

function problem(data, state) {
  if (data.error) {
    return data.error;
  }
  const troubled = state === "error" || state === "unknown";
  return troubled && data.hf_state ? `Hugging Face reports the endpoint as ${data.hf_state}.` : "";
}

function renderButtons(entry, state) {
  const { card, data } = entry;
  const busy = entry.pending || state === "starting" || state === "stopping" || Boolean(data.operation);
  const unmanaged = data.managed === false;
  card.querySelector(".wake").disabled = busy || unmanaged || state === "running";
  card.querySelector(".sleep").disabled = busy || unmanaged || state === "sleeping";
  card.setAttribute("aria-busy", String(busy));
}

function secondsLeft(entry) {
  const base = entry.data.auto_sleep_in;
  if (typeof base !== "number" || entry.data.status !== "running") {
    return null;
  }
  return Math.max(0, base - Math.floor((performance.now() - entry.receivedAt) / 1000));
}

function renderCountdown(entry) {
  const left = secondsLeft(entry);
  const element = entry.card.querySelector(".countdown");
  if (left === null) {
    element.textContent = entry.data.status === "running" ? "never" : "—";
    return;
  }
  element.textContent = clock(left) + warmUntil(entry.data);
}

// Inside a warm window the endpoint is not put to sleep before the window's end.
function warmUntil(data) {
  if (typeof data.warm_until !== "number") {
    return "";
  }
  const end = new Date(data.warm_until * 1000);
  return ` · warm until ${end.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`;
}

function tick() {
  for (const entry of endpoints.values()) {
    renderCountdown(entry);
  }
}

function setMessage(key, text, tone = "info") {
  const entry = endpoints.get(key);
  if (!entry) {
    return;
  }
  const message = entry.card.querySelector(".card-message");
  message.textContent = text;
  message.dataset.tone = tone;
}

async function operate(operation, key) {
  const entry = endpoints.get(key);
  const question = operation === "wake" ? `Wake ${key}?` : `Put ${key} to sleep?`;
  if (!entry || entry.pending || !window.confirm(question)) {
    return;
  }
  entry.pending = true;
  renderCard(entry);
  setMessage(key, operation === "wake" ? "Asking to wake…" : "Asking to sleep…");
  try {
    await api("POST", `/api/endpoints/${operation}/${encodeURIComponent(key)}`);
    setMessage(key, "");
  } catch (error) {
    if (error.status !== 401) {
      setMessage(key, failureText(operation, error), "error");
    }
  } finally {
    entry.pending = false;
    renderCard(entry);
  }
}

function failureText(operation, error) {
  if (error instanceof ApiError) {
    return `${operation === "wake" ? "Wake" : "Sleep"} refused: ${error.message}`;
  }
  return "crazy-gary cannot be reached.";
}

function applyOperation(data) {
  applyEndpoint(data.model_type, data.endpoint);
  const verb = data.operation === "wake" ? "Wake" : "Sleep";
  if (data.phase === "started") {
    setMessage(data.model_type, `${verb} started by ${data.actor || "someone"}.`);
    return;
  }
  if (data.success === false) {
    setMessage(data.model_type, `${verb} failed: ${data.error || "no reason given."}`, "error");
  } else {
    setMessage(data.model_type, "");
  }
  refreshAudit();
  refreshFigures();
}

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

// ---------------------------------------------------------------------------------------------
// Costs: totals and a bar chart (inline SVG) of cost and saved per endpoint

function refreshFigures() {
  refreshCosts();
  refreshUsage();
}

async function refreshCosts() {
  const note = $("costs-note");
  try {
    const body = await api("GET", "/api/endpoints/costs");
    renderCostTotals(body.total || {});
    renderCostChart(body.endpoints || {});
    note.textContent = "Since crazy-gary first saw each endpoint; saved is against always-on.";
    note.dataset.tone = "";
  } catch (error) {
    reportPanelError(note, "The costs", error);
  }
}

function renderCostTotals(total) {
  const items = [
    ["Cost so far", total.cost],
    ["Saved", total.saved],
    ["Projected month", total.projected_month],
  ];
  const nodes = items.flatMap(([label, value]) => {
    const div = document.createElement("div");
    const dt = document.createElement("dt");
    const dd = document.createElement("dd");
    dt.textContent = label;
    dd.textContent = typeof value === "number" ? dollars(value) : "—";
    div.append(dt, dd);
    return [div];
  });
  $("costs-total").replaceChildren(...nodes);
}

function svgElement(name, attributes, text) {
  const element = document.createElementNS(SVG, name);
  for (const [attribute, value] of Object.entries(attributes)) {
    element.setAttribute(attribute, String(value));
  }
  if (text !== undefined) {
    element.textContent = text;
  }
  return element;
}

function renderCostChart(reports) {
  const keys = Object.keys(reports).sort();
  const values = keys.flatMap((key) => [reports[key].cost || 0, reports[key].saved || 0]);
  const scale = Math.max(...values, 0) || 1;
  const rowHeight = 46;
  const height = 24 + keys.length * rowHeight;
  const svg = svgElement("svg", { viewBox: `0 0 360 ${height}`, role: "img", "aria-labelledby": "costs-chart-title" });
  const summary = keys.map((key) => `${key}: cost ${dollars(reports[key].cost || 0)}, saved ${dollars(reports[key].saved || 0)}`);
  svg.append(svgElement("title", { id: "costs-chart-title" }, `Cost and saved per endpoint. ${summary.join("; ")}`));
  svg.append(legend());
  keys.forEach((key, index) => svg.append(costRow(key, reports[key], 24 + index * rowHeight, scale)));
  $("costs-chart").replaceChildren(svg);
}

function legend() {
  const group = svgElement("g", { "aria-hidden": "true" });
  group.append(
    svgElement("rect", { x: 70, y: 4, width: 10, height: 10, class: "bar-cost" }),
    svgElement("text", { x: 84, y: 13 }, "cost"),
    svgElement("rect", { x: 130, y: 4, width: 10, height: 10, class: "bar-saved" }),
    svgElement("text", { x: 144, y: 13 }, "saved"),
  );
  return group;
}

function costRow(key, report, top, scale) {
  const group = svgElement("g", { "aria-hidden": "true" });
  group.append(svgElement("text", { x: 0, y: top + 18, class: "label" }, key));
  const bars = [["cost", report.cost || 0, top + 4], ["saved", report.saved || 0, top + 22]];
  for (const [kind, value, y] of bars) {
    const width = Math.max(value > 0 ? 2 : 0, (value / scale) * 200);
    group.append(
      svgElement("rect", { x: 70, y, width: 200, height: 14, class: "track" }),
      svgElement("rect", { x: 70, y, width: width.toFixed(1), height: 14, class: `bar-${kind}` }),
      svgElement("text", { x: 276, y: y + 11 }, dollars(value)),
    );
  }
  return group;
}

// ---------------------------------------------------------------------------------------------
// Formatting

function clock(seconds) {
  const minutes = Math.floor(seconds / 60);
  return `${minutes}:${String(seconds % 60).padStart(2, "0")}`;
}

function dollars(value) {
  if (value === 0) {
    return "$0";
  }
  if (Math.abs(value) >= 100) {
    return `$${value.toFixed(0)}`;
  }
  if (Math.abs(value) >= 0.01) {
    return `$${value.toFixed(2)}`;
  }
  return `$${value.toPrecision(2)}`;
}

// A cost to the hundredth of a cent: a key's share of a day is often below a cent.
function preciseDollars(value) {
  return Math.abs(value) >= 100 ? `$${value.toFixed(2)}` : `$${value.toFixed(4)}`;
}

function count(value) {
  return typeof value === "number" ? value.toLocaleString() : "—";
}

function utcTime(unixSeconds) {
  if (typeof unixSeconds !== "number") {
    return "—";
  }
  return `${new Date(unixSeconds * 1000).toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

function time(unixSeconds) {
  if (typeof unixSeconds !== "number") {
    return "—";
  }
  return new Date(unixSeconds * 1000).toLocaleTimeString([], { hour12: false });
}

function latency(milliseconds) {
  if (typeof milliseconds !== "number") {
    return "—";
  }
  return milliseconds >= 1000 ? `${(milliseconds / 1000).toFixed(1)} s` : `${Math.round(milliseconds)} ms`;
}

// ---------------------------------------------------------------------------------------------

$("key-form").addEventListener("submit", submitKey);
$("change-key").addEventListener("click", () => askForKey("Enter another API key."));
setInterval(tick, 1000);
start();
