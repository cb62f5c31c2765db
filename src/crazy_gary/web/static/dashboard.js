// The crazy-gary dashboard: the REST API is its only data source, the event stream keeps it live.
// Loaded last (format.js, live.js, activity.js, costs.js, usage.js and policies.js hold the rest); it
// starts the page.
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
// Events of the stream, by name

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

$("key-form").addEventListener("submit", submitKey);
$("change-key").addEventListener("click", () => askForKey("Enter another API key."));
$("policies-run").addEventListener("click", replayPolicies);
setInterval(tick, 1000);
start();
