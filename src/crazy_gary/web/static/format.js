// How the dashboard writes times, durations, money and counts.
"use strict";

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
