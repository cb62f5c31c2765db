// The dashboard's live connection (loaded before dashboard.js, whose state and handlers it uses):
// the event stream read with fetch() and a small SSE parser, and the banner while it is down.
"use strict";

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
