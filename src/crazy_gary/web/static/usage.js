// The usage panel of the dashboard (loaded before dashboard.js, whose helpers it uses at run time: $, api,
// count, dollars, utcTime, session). Usage in the last 24 hours: a row per key and endpoint (the
// idle cost as "idle"), a bar per quota window.
"use strict";


const QUOTA_WINDOWS = [["tokens_per_day", "per day"], ["tokens_per_month", "per month"]];

async function refreshUsage() {
  const current = session;
  try {
    const body = await api("GET", "/api/usage");
    renderUsage(Array.isArray(body.rows) ? body.rows : [], body.quotas || {});
  } catch (error) {
    if (current && current === session && !(error instanceof ApiError && error.status === 401)) {
      usageUnavailable(error);
    }
  }
}

function usageUnavailable(error) {
  $("usage-body").hidden = true;
  const note = $("usage-note");
  note.textContent = error instanceof ApiError
    ? `Usage unavailable: ${error.message}`
    : "Usage unavailable: crazy-gary cannot be reached.";
  note.dataset.tone = "error";
}

function renderUsage(rows, quotas) {
  const entries = rows.filter((entry) => entry && typeof entry === "object").sort(byEndpointThenKey);
  const trs = entries.map(usageRow);
  $("usage-table").tBodies[0].replaceChildren(...trs);
  $("usage-table").hidden = trs.length === 0;
  $("usage-empty").hidden = trs.length !== 0;
  renderQuotas(quotas);
  $("usage-note").textContent = "";
  $("usage-body").hidden = false;
}

// The idle row holds the endpoint's billed time that no request used.
function isIdle(entry) {
  return entry.key === null || entry.key === undefined;
}

function usageKey(entry) {
  return isIdle(entry) ? "idle" : String(entry.key);
}

// By endpoint, then by key, the idle row last in its endpoint.
function byEndpointThenKey(a, b) {
  return String(a.model_type).localeCompare(String(b.model_type))
    || Number(isIdle(a)) - Number(isIdle(b))
    || usageKey(a).localeCompare(usageKey(b));
}

function usageRow(entry) {
  const tr = row([
    ["Key", usageKey(entry), isIdle(entry) ? "idle" : ""],
    ["Endpoint", entry.model_type],
    ["Requests", count(entry.requests), "number"],
    ["Prompt tokens", count(entry.prompt_tokens), "number"],
    ["Completion tokens", count(entry.completion_tokens), "number"],
    ["Cost", typeof entry.cost === "number" ? preciseDollars(entry.cost) : "—", "number"],
  ]);
  tr.dataset.usageKey = usageKey(entry);
  tr.dataset.usageEndpoint = String(entry.model_type);
  return tr;
}

function renderQuotas(quotas) {
  const bars = Object.keys(quotas).sort().flatMap((key) => QUOTA_WINDOWS
    .filter(([field]) => quotas[key] && quotas[key][field])
    .map(([field, label]) => quotaBar(key, field, label, quotas[key][field])));
  $("usage-quota-list").replaceChildren(...bars);
  $("usage-quotas").hidden = bars.length === 0;
}

function quotaBar(key, field, label, quota) {
  const limit = typeof quota.limit === "number" ? quota.limit : 0;
  const used = typeof quota.used === "number" ? quota.used : 0;
  const item = document.createElement("div");
  item.className = "quota";
  item.dataset.quotaKey = key;
  item.dataset.quotaWindow = field;
  const name = document.createElement("span");
  name.className = "quota-name";
  name.textContent = `${key} · ${label}`;
  const figures = document.createElement("span");
  figures.className = quota.remaining === 0 ? "quota-figures bad" : "quota-figures";
  figures.textContent = `${count(used)} / ${count(limit)} tokens · ${count(quota.remaining)} left · `;
  const resets = document.createElement("span");
  resets.className = "quota-resets";
  resets.textContent = `resets ${utcTime(quota.resets_at)}`;
  figures.append(resets);
  const head = document.createElement("p");
  head.className = "quota-head";
  head.append(name, figures);
  const meter = document.createElement("meter");
  meter.min = 0;
  meter.max = Math.max(limit, 1);
  meter.low = 0.75 * meter.max; // green below three quarters, amber to nine tenths, red above
  meter.high = 0.9 * meter.max;
  meter.optimum = 0;
  meter.value = Math.min(used, meter.max);
  meter.setAttribute("aria-label", `${key}: ${count(used)} of ${count(limit)} tokens used ${label}`);
  item.append(head, meter);
  return item;
}
