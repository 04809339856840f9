// The ops page: polls /v1/ops/overview every few seconds and draws the state as tiles, inline SVG charts
// and tables. The supervisor token is entered once (or passed as #token=… in the address, which never
// reaches a server) and kept in this tab's sessionStorage only.
"use strict";

(function () {
  const POLL_MS = 5000;
  const HISTORY = 60; // samples kept for the trend chart: five minutes at the poll interval
  const TOKEN_KEY = "supportdesk.ops.token";
  const SVG = "http://www.w3.org/2000/svg";
  const METRICS = { first_response: "First response", next_response: "Next response", resolution: "Resolution" };
  const samples = [];
  let timer = null;

  const $ = (selector) => document.querySelector(selector);

  function takeTokenFromAddress() {
    const match = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
    if (match) {
      sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
      samples.length = 0;
      window.history.replaceState(null, "", window.location.pathname + window.location.search);
    }
  }

  function setStatus(text, isError) {
    const status = $("#status");
    status.textContent = text;
    status.classList.toggle("error", Boolean(isError));
  }

  function askForToken(message) {
    if (timer !== null) { clearTimeout(timer); timer = null; }
    sessionStorage.removeItem(TOKEN_KEY);
    $("#board").hidden = true;
    $("#sign-out").hidden = true;
    $("#token-form").hidden = false;
    $("#token-error").textContent = message || "";
    setStatus(message ? "Signed out" : "Waiting for a token", Boolean(message));
    $("#token-input").focus();
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "–";
    const s = Math.round(seconds);
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + String(s % 60).padStart(2, "0") + " s";
    return Math.floor(s / 3600) + " h " + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + " min";
  }

  function tile(name, text, tone) {
    const element = document.querySelector('#summary [data-figure="' + name + '"]');
    element.querySelector(".value").textContent = text;
    element.classList.remove("ok", "warn", "bad");
    if (tone) element.classList.add(tone);
  }

  function node(name, attributes, text) {
    const element = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
    if (text !== undefined) element.textContent = text;
    return element;
  }

  function clear(svg) { while (svg.firstChild) svg.removeChild(svg.firstChild); }

  function drawTrend(svg) {
    clear(svg);
    const left = 40, right = 590, top = 10, bottom = 190;
    svg.appendChild(node("line", { class: "axis", x1: left, y1: bottom, x2: right, y2: bottom }));
    svg.appendChild(node("line", { class: "axis", x1: left, y1: top, x2: left, y2: bottom }));
    const maxWaiting = Math.max(1, ...samples.map((h) => h.waiting));
    const maxWait = Math.max(1, ...samples.map((h) => h.longest));
    svg.appendChild(node("text", { x: 4, y: top + 10 }, String(maxWaiting)));
    svg.appendChild(node("text", { x: 4, y: bottom }, "0"));
    svg.appendChild(node("text", { x: left + 4, y: 212 }, "— waiting (left scale)   - - longest wait, up to " + duration(maxWait)));
    if (samples.length < 2) return;
    const x = (i) => left + ((right - left) * i) / (HISTORY - 1);
    const offset = HISTORY - samples.length;
    const points = (value, max) =>
      samples.map((h, i) => x(i + offset).toFixed(1) + "," + (bottom - ((bottom - top) * value(h)) / max).toFixed(1)).join(" ");
    svg.appendChild(node("polyline", { class: "line-waiting", points: points((h) => h.waiting, maxWaiting) }));
    svg.appendChild(node("polyline", { class: "line-wait", points: points((h) => h.longest, maxWait) }));
  }

  function drawQueues(svg, queues) {
    clear(svg);
    const shown = queues.slice(0, 8);
    const left = 110, right = 480, rowHeight = 200 / Math.max(shown.length, 1);
    const max = Math.max(1, ...shown.map((q) => q.waiting));
    if (shown.length === 0) { svg.appendChild(node("text", { x: 10, y: 20 }, "No queues yet")); return; }
    shown.forEach((q, i) => {
      const y = 10 + i * rowHeight;
      const width = ((right - left) * q.waiting) / max;
      svg.appendChild(node("text", { x: 4, y: y + rowHeight / 2 + 4 }, q.queue));
      svg.appendChild(node("rect", { class: "bar", "data-queue": q.queue, x: left, y: y + 2, width: Math.max(width, 1), height: Math.max(rowHeight - 6, 2) }));
      svg.appendChild(node("text", { x: left + Math.max(width, 1) + 6, y: y + rowHeight / 2 + 4 },
        q.waiting + " · " + duration(q.longest_wait_seconds)));
    });
  }

  function drawSla(svg, totals) {
    clear(svg);
    if (totals.length === 0) { svg.appendChild(node("text", { x: 10, y: 20 }, "No SLA clocks in the last 24 h")); return; }
    const left = 110, right = 590, rowHeight = 200 / totals.length;
    const max = Math.max(1, ...totals.map((s) => s.met + s.breached + s.at_risk));
    totals.forEach((s, i) => {
      const y = 10 + i * rowHeight;
      let x = left;
      svg.appendChild(node("text", { x: 4, y: y + rowHeight / 2 + 4 }, METRICS[s.metric] || s.metric));
      for (const [value, kind] of [[s.met, "met"], [s.breached, "breached"], [s.at_risk, "risk"]]) {
        const width = ((right - left - 250) * value) / max;
        if (value > 0) {
          svg.appendChild(node("rect", { class: "bar-" + kind, "data-metric": s.metric, x: x, y: y + 2, width: width, height: Math.max(rowHeight - 6, 2) }));
        }
        x += width;
      }
      svg.appendChild(node("text", { x: x + 6, y: y + rowHeight / 2 + 4 },
        s.attainment_percent.toFixed(1) + " % · " + s.breached + " breached · " + s.at_risk + " at risk"));
    });
  }

  function cell(row, text, tone) {
    const td = row.insertCell();
    td.textContent = text;
    if (tone) td.className = tone;
  }

  function fillQueues(queues) {
    const body = $("#queues tbody");
    body.replaceChildren();
    for (const q of queues) {
      const row = body.insertRow();
      row.dataset.queue = q.queue;
      cell(row, q.queue);
      cell(row, String(q.waiting), q.waiting > 0 && q.agents_available === 0 ? "warn" : "");
      cell(row, duration(q.longest_wait_seconds), q.longest_wait_seconds > 300 ? "bad" : q.longest_wait_seconds > 120 ? "warn" : "");
      cell(row, duration(q.estimated_wait_seconds));
      cell(row, String(q.agents_available));
      cell(row, String(q.agents_busy));
      cell(row, String(q.offers_outstanding));
    }
  }

  function fillSla(rows) {
    const body = $("#sla tbody");
    body.replaceChildren();
    for (const s of rows.filter((r) => r.queue !== null)) {
      const row = body.insertRow();
      cell(row, s.queue || "–");
      cell(row, METRICS[s.metric] || s.metric);
      cell(row, String(s.met));
      cell(row, String(s.breached), s.breached > 0 ? "bad" : "");
      cell(row, String(s.at_risk), s.at_risk > 0 ? "warn" : "");
      cell(row, s.attainment_percent.toFixed(1) + " %", s.attainment_percent < 95 ? "bad" : "");
    }
  }

  function render(data) {
    const totals = data.sla.filter((s) => s.queue === null);
    const first = totals.find((s) => s.metric === "first_response");
    const atRisk = totals.reduce((n, s) => n + s.at_risk, 0);
    const breached = totals.reduce((n, s) => n + s.breached, 0);
    samples.push({ waiting: data.waiting, longest: data.longest_wait_seconds });
    if (samples.length > HISTORY) samples.shift();

    const agents = data.agents;
    tile("waiting", String(data.waiting), data.waiting > 0 && agents.available === 0 ? "warn" : "");
    tile("longest_wait", duration(data.longest_wait_seconds), data.longest_wait_seconds > 300 ? "bad" : data.longest_wait_seconds > 120 ? "warn" : "ok");
    // Each agent once, over every queue: the four add up to all agents.
    tile("agents_available", String(agents.available), agents.available > 0 ? "ok" : "warn");
    tile("agents_busy", String(agents.busy));
    tile("agents_away", String(agents.away));
    tile("agents_offline", String(agents.offline));
    tile("at_risk", String(atRisk), atRisk > 0 ? "warn" : "ok");
    tile("breached", String(breached), breached > 0 ? "bad" : "ok");
    tile("attainment", first ? first.attainment_percent.toFixed(1) + " %" : "–", first && first.attainment_percent < 95 ? "bad" : "ok");
    drawTrend($("#chart-trend"));
    drawQueues($("#chart-queues"), data.queues);
    drawSla($("#chart-sla"), totals);
    fillQueues(data.queues);
    fillSla(data.sla);
    setStatus("Updated " + new Date(data.generated_at).toLocaleTimeString() + " · every " + POLL_MS / 1000 + " s");
  }

  async function poll() {
    timer = null;
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) { askForToken(""); return; }
    try {
      const response = await fetch("/v1/ops/overview", { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
      if (response.status === 401) { askForToken("That token was not accepted (expired or not valid here)."); return; }
      if (response.status === 403) { askForToken("That token's role cannot see this page: use a supervisor or admin token."); return; }
      if (!response.ok) {
        const problem = await response.json().catch(() => ({}));
        setStatus("Cannot update: " + (problem.title || response.status) + "; retrying", true);
      } else {
        $("#token-form").hidden = true;
        $("#board").hidden = false;
        $("#sign-out").hidden = false;
        render(await response.json());
      }
    } catch (error) {
      setStatus("Cannot reach the gateway; retrying", true);
    }
    timer = setTimeout(poll, POLL_MS);
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("#token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = $("#token-input").value.trim();
      if (!value) return;
      sessionStorage.setItem(TOKEN_KEY, value);
      $("#token-input").value = "";
      poll();
    });
    $("#sign-out").addEventListener("click", () => askForToken(""));
    window.addEventListener("hashchange", () => { takeTokenFromAddress(); poll(); });
    takeTokenFromAddress();
    poll();
  });
})();
