// The dashboard's behaviour: the call form, and live numbers from Debug.Stats.
"use strict";

const POLL_MS = 2000;
const SAMPLES = 60;

function path(...segments) {
  return "/" + segments.map(encodeURIComponent).join("/");
}

function uptime(secs) {
  const s = Math.floor(secs), d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
  if (d) return `${d}d${h}h`;
  if (h) return `${h}h${m}m`;
  if (m) return `${m}m${s % 60}s`;
  return `${secs.toFixed(1)}s`;
}

// ---- The call form -------------------------------------------------------------------------

// A starting request for a type name: nothing for `()`, a literal for primitives, `{}` else.
function template(type) {
  if (type === "()" || type === "-") return "";
  if (/^[iu](8|16|32|64|128|size)$|^f(32|64)$/.test(type)) return "0";
  if (type === "bool") return "false";
  if (type === "String" || type === "&str") return '""';
  if (/^Vec</.test(type)) return "[]";
  if (/^\(.*\)$/.test(type)) return "[]";
  return "{}";
}

function setupCallForm() {
  const form = document.getElementById("call-form");
  if (!form) return;
  const service = form.dataset.service;
  const select = document.getElementById("endpoint");
  const request = document.getElementById("request");
  const type = document.getElementById("request-type");
  const button = document.getElementById("call-button");
  const reply = document.getElementById("reply");
  const status = document.getElementById("reply-status");
  const time = document.getElementById("reply-time");
  const body = document.getElementById("reply-body");
  const edited = new Map(); // what was typed per endpoint, kept across switches

  let current = select.value;
  function chosen() {
    const option = select.selectedOptions[0];
    const rq = option ? option.dataset.request : "";
    type.textContent = rq ? `${rq} → ${option.dataset.response}` : "";
    request.placeholder = rq === "()" ? "no request: leave empty" : `JSON for ${rq}`;
    request.value = edited.has(select.value) ? edited.get(select.value) : template(rq);
    current = select.value;
  }
  select.addEventListener("change", () => {
    edited.set(current, request.value);
    chosen();
  });
  chosen();

  document.querySelectorAll("[data-try]").forEach((b) =>
    b.addEventListener("click", () => {
      edited.set(current, request.value);
      select.value = b.dataset.try;
      chosen();
      request.focus();
    }),
  );

  request.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
      ev.preventDefault();
      form.requestSubmit();
    }
  });

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!select.value) return;
    button.disabled = true;
    button.textContent = "Calling…";
    const started = performance.now();
    let code = 0, label = "", text = "";
    try {
      const res = await fetch(path("api", "call", service, select.value), {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: request.value,
      });
      code = res.status;
      text = await res.text();
      label = res.statusText;
      try {
        const json = JSON.parse(text);
        if (!res.ok && json && json.status) label = json.status;
        text = JSON.stringify(json, null, 2);
      } catch (_) { /* not JSON: show it as it came */ }
    } catch (err) {
      label = "network error";
      text = String(err);
    }
    const ms = performance.now() - started;
    status.textContent = code ? `${code} ${label}`.trim() : label;
    status.className = "status " + (code >= 200 && code < 300 ? "ok" : "bad");
    time.textContent = `${select.value} · ${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
    body.textContent = text;
    reply.hidden = false;
    button.disabled = false;
    button.textContent = "Call";
  });
}

// ---- Live stats ----------------------------------------------------------------------------

function setupStats() {
  document.querySelectorAll("[data-stats]").forEach((el) => {
    const service = el.dataset.stats;
    const detail = el.hasAttribute("data-detail");
    // The health dot of a detail page sits in the title, outside the stats card.
    const dot = detail ? document.querySelector(".title-row [data-health]") : el.querySelector("[data-health]");
    const history = [];
    let last = null;

    async function poll() {
      let reports = null;
      try {
        const res = await fetch(path("api", "stats", service));
        if (res.ok) reports = await res.json();
      } catch (_) { /* shown as unreachable below */ }
      render(reports);
      setTimeout(poll, POLL_MS);
    }

    function set(key, value) {
      el.querySelectorAll(`[data-k="${key}"]`).forEach((n) => (n.textContent = value));
    }

    function render(reports) {
      const ok = (reports || []).filter((r) => r.reply);
      if (dot) {
        dot.className = "dot " + (!reports || !ok.length ? "bad" : ok.length < reports.length ? "warn" : "ok");
        dot.title = !reports ? "unreachable" : `${ok.length} of ${reports.length} nodes answering`;
      }
      if (!reports) return;
      const sum = (k) => ok.reduce((n, r) => n + r.reply[k], 0);
      const calls = sum("calls");
      const now = performance.now();
      let rate = null;
      if (last && calls >= last.calls) rate = ((calls - last.calls) * 1000) / (now - last.at);
      last = { calls, at: now };
      set("calls", calls.toLocaleString());
      set("errors", sum("errors").toLocaleString());
      set("in_flight", sum("in_flight").toLocaleString());
      set("rate", rate === null ? "–" : rate < 10 ? rate.toFixed(1) : Math.round(rate).toLocaleString());
      if (!detail) return;
      if (rate !== null) {
        history.push(rate);
        if (history.length > SAMPLES) history.shift();
        drawSpark(el.querySelector(".spark polyline"), history);
      }
      const rows = [];
      for (const r of reports) {
        const node = { text: shortNode(r.node, service), title: `${r.node} at ${r.address}` };
        if (!r.reply) {
          rows.push([node, `error: ${r.error ? r.error.detail : "no reply"}`, "", "", "", ""]);
          continue;
        }
        node.title += `, up ${uptime(r.reply.uptime_secs)}`;
        for (const h of r.reply.handlers) {
          rows.push([node, h.handler, h.calls, h.errors, h.running, h.queued]);
        }
      }
      const tbody = el.querySelector(".handlers tbody");
      tbody.replaceChildren(
        ...rows.map((cells) => {
          const tr = document.createElement("tr");
          for (const c of cells) {
            const td = document.createElement("td");
            if (c && typeof c === "object") {
              td.textContent = c.text;
              td.title = c.title;
            } else {
              td.textContent = typeof c === "number" ? c.toLocaleString() : c;
              if (typeof c === "string" && c.startsWith("error: ")) td.className = "wrap";
            }
            tr.append(td);
          }
          return tr;
        }),
      );
    }

    poll();
  });
}

// `demo-985bb63241606f5f` is `985bb632` in a narrow column; the title has it all.
function shortNode(id, service) {
  const rest = id.startsWith(service + "-") ? id.slice(service.length + 1) : id;
  return rest.length > 10 ? rest.slice(0, 8) + "…" : rest;
}

// The last minute of calls/s, right-aligned, scaled to the busiest sample; the area under
// the line is shaded.
function drawSpark(line, values) {
  if (!line) return;
  const max = Math.max(1, ...values);
  const step = 300 / (SAMPLES - 1);
  const first = SAMPLES - Math.max(values.length, 2);
  const shown = values.length === 1 ? [values[0], values[0]] : values;
  const points = shown.map((v, i) => `${((first + i) * step).toFixed(1)},${(46 - (v / max) * 40).toFixed(1)}`);
  line.setAttribute("points", points.join(" "));
  const area = line.parentNode.querySelector("polygon");
  if (area) area.setAttribute("points", `${(first * step).toFixed(1)},48 ${points.join(" ")} 300,48`);
}

setupCallForm();
setupStats();
