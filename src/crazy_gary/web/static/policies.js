// The policies panel of the dashboard (loaded before dashboard.js, whose helpers it uses at run time:
// $, api, row, count, dollars, ApiError). On demand, since a replay takes seconds: each endpoint's
// requests of the last days replayed under the default policies (GET /api/endpoints/policies).
"use strict";

const POLICY_DAYS = 7;

async function replayPolicies() {
  const button = $("policies-run");
  const note = $("policies-note");
  button.disabled = true;
  note.dataset.tone = "info";
  note.textContent = `Replaying the last ${POLICY_DAYS} days under each policy…`;
  try {
    const body = await api("GET", `/api/endpoints/policies?days=${POLICY_DAYS}`);
    renderPolicies(body.endpoints && typeof body.endpoints === "object" ? body.endpoints : {});
    note.textContent = "";
  } catch (error) {
    note.textContent = error instanceof ApiError
      ? `The replay failed: ${error.message}`
      : "The replay failed: crazy-gary cannot be reached.";
    note.dataset.tone = "error";
  } finally {
    button.disabled = false;
  }
}

function renderPolicies(endpoints) {
  const tables = Object.keys(endpoints).sort().map((key) => policyTable(key, endpoints[key] || {}));
  $("policies-list").replaceChildren(...tables);
  $("policies-list").hidden = tables.length === 0;
}

function policyTable(key, policies) {
  const table = document.createElement("table");
  table.className = "records";
  table.dataset.policiesEndpoint = key;
  const caption = document.createElement("caption");
  caption.textContent = key;
  const head = document.createElement("thead");
  const names = ["Policy", "Cost", "Cold hits", "Wait p95", "Saved", "Over the oracle"];
  const headRow = document.createElement("tr");
  for (const name of names) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = name;
    headRow.append(th);
  }
  head.append(headRow);
  const cheapestLive = cheapestWithoutOracle(policies);
  const rows = Object.keys(policies).map((name) => policyRow(name, policies[name] || {}, name === cheapestLive));
  const body = document.createElement("tbody");
  body.append(...rows);
  table.append(caption, head, body);
  return table;
}

// The policy a user can choose (not the oracle, which knows the future) that billed least.
function cheapestWithoutOracle(policies) {
  const live = Object.keys(policies).filter((name) => name !== "oracle" && typeof policies[name].cost === "number");
  return live.sort((a, b) => policies[a].cost - policies[b].cost)[0];
}

function policyRow(name, figures, cheapest) {
  const tr = row([
    ["Policy", cheapest ? `${name} (cheapest)` : name],
    ["Cost", typeof figures.cost === "number" ? dollars(figures.cost) : "—", "number"],
    ["Cold hits", count(figures.cold_hits), "number"],
    ["Wait p95", typeof figures.added_wait_p95 === "number" ? `${figures.added_wait_p95.toFixed(0)} s` : "—", "number"],
    ["Saved", typeof figures.saved === "number" ? dollars(figures.saved) : "—", "number"],
    ["Over the oracle", typeof figures.vs_oracle === "number" ? `${figures.vs_oracle.toFixed(2)}×` : "—", "number"],
  ]);
  tr.dataset.policy = name;
  return tr;
}
