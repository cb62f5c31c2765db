// The dashboard's costs panel: totals and a bar chart (inline SVG) of cost and saved per endpoint.
"use strict";

const SVG = "http://www.w3.org/2000/svg";

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
