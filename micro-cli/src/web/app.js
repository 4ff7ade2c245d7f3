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
//
// Each endpoint option carries its request's JSON Schema, derived from the fields the service
// registered. The form shows one input per field, keeps the JSON below in step with them (and
// them with it), and checks the request against the schema before sending it.

// `[X, null]`: the field is optional; its inner schema is X.
function unwrapOptional(schema) {
  const any = schema && schema.anyOf;
  if (any && any.length === 2 && any[1].type === "null") return { schema: any[0], optional: true };
  return { schema: schema || {}, optional: false };
}

// Variants that are only names (a Rust enum of unit variants): a drop-down.
function choices(schema) {
  const variants = schema.oneOf;
  if (!variants || !variants.every((v) => "const" in v)) return null;
  return variants.map((v) => v.const);
}

function isPrimitive(schema) {
  return ["string", "integer", "number", "boolean"].includes(schema.type) || choices(schema) !== null;
}

// A starting value for a schema: what a person edits from.
function sample(schema) {
  const { schema: s, optional } = unwrapOptional(schema);
  if (optional) return null;
  if ("const" in s) return s.const;
  if (s.oneOf && s.oneOf.length) return sample(s.oneOf[0]);
  switch (s.type) {
    case "null": return null;
    case "string": return "";
    case "integer": case "number": return s.minimum > 0 ? s.minimum : 0;
    case "boolean": return false;
    case "array": return (s.prefixItems || []).map(sample).concat(
      Array.from({ length: Math.max(0, (s.minItems || 0) - (s.prefixItems || []).length) }, () => sample(s.items)));
    case "object": {
      const out = {};
      for (const name of s.required || []) out[name] = sample(s.properties[name]);
      return out;
    }
    default: return {};
  }
}

function kind(v) {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v;
}

// What is wrong with `value` against `schema`, as `path: problem` lines.
function validate(schema, value, path, out) {
  const where = path || "request";
  if (!schema || typeof schema !== "object") return out;
  if (schema.anyOf) {
    if (!schema.anyOf.some((s) => validate(s, value, path, []).length === 0)) {
      const { schema: inner, optional } = unwrapOptional(schema);
      if (optional) validate(inner, value, path, out);
      else out.push(`${where}: matches none of the allowed shapes`);
    }
    return out;
  }
  if (schema.oneOf) {
    const matching = schema.oneOf.filter((s) => validate(s, value, path, []).length === 0);
    if (matching.length !== 1) {
      const names = choices(schema);
      out.push(names ? `${where}: must be one of ${names.join(", ")}` : `${where}: matches no variant of ${schema.title || "the enum"}`);
    }
    return out;
  }
  if ("const" in schema && value !== schema.const) {
    out.push(`${where}: must be ${JSON.stringify(schema.const)}`);
    return out;
  }
  const t = schema.type;
  const k = kind(value);
  const typeOk = !t || t === k || (t === "integer" && Number.isInteger(value)) || (t === "number" && k === "number");
  if (!typeOk) {
    const article = { integer: "an integer", object: "an object", array: "a list", null: "null", boolean: "true or false" }[t] || `a ${t}`;
    out.push(`${where}: must be ${article}`);
    return out;
  }
  if (typeof value === "number") {
    if (schema.minimum !== undefined && value < schema.minimum) out.push(`${where}: must be at least ${schema.minimum}`);
    if (schema.maximum !== undefined && value > schema.maximum) out.push(`${where}: must be at most ${schema.maximum}`);
  }
  if (typeof value === "string") {
    const n = [...value].length;
    if (schema.minLength !== undefined && n < schema.minLength) out.push(`${where}: must have at least ${schema.minLength} character(s)`);
    if (schema.maxLength !== undefined && n > schema.maxLength) out.push(`${where}: must have at most ${schema.maxLength} character(s)`);
  }
  if (k === "array") {
    if (schema.minItems !== undefined && value.length < schema.minItems) out.push(`${where}: needs at least ${schema.minItems} item(s)`);
    if (schema.maxItems !== undefined && value.length > schema.maxItems) out.push(`${where}: takes at most ${schema.maxItems} item(s)`);
    value.forEach((item, i) => {
      const s = schema.prefixItems ? schema.prefixItems[i] : schema.items;
      validate(s, item, `${where}[${i}]`, out);
    });
  }
  if (k === "object") {
    for (const name of schema.required || []) {
      if (!(name in value)) out.push(`${path ? path + "." : ""}${name}: is required`);
    }
    for (const [name, v] of Object.entries(value)) {
      const s = schema.properties ? schema.properties[name] : schema.additionalProperties;
      if (s === false) out.push(`${path ? path + "." : ""}${name}: is not a field`);
      else if (s) validate(s, v, `${path ? path + "." : ""}${name}`, out);
    }
  }
  return out;
}

// A short type for a label: `string`, `integer ≤ 65535`, `list`, `one of a, b`…
function describe(schema) {
  const { schema: s, optional } = unwrapOptional(schema);
  const names = choices(s);
  let text = names ? `one of ${names.join(", ")}` : s.title || s.type || "JSON";
  if (s.type === "array") text = "list (JSON)";
  else if (s.type === "object" || (!names && s.oneOf)) text = `${s.title || "object"} (JSON)`;
  return optional ? `${text}, optional` : text;
}

// One input per field of an object request, or one for a primitive request.
function buildFields(container, schema, onInput) {
  container.replaceChildren();
  const fields = [];
  const add = (name, fieldSchema, required) => {
    const { schema: s, optional } = unwrapOptional(fieldSchema);
    const row = document.createElement("div");
    row.className = "field";
    const label = document.createElement("label");
    const id = `field-${fields.length}`;
    label.htmlFor = id;
    label.textContent = name || "value";
    if (required) label.append(Object.assign(document.createElement("span"), { className: "req", textContent: " *" }));
    label.append(Object.assign(document.createElement("span"), { className: "hint", textContent: ` ${describe(fieldSchema)}` }));
    let control;
    const names = choices(s);
    if (names) {
      control = document.createElement("select");
      for (const n of (optional ? [""] : []).concat(names)) control.append(new Option(n || "(none)", n));
    } else if (s.type === "boolean") {
      control = document.createElement("select");
      for (const n of (optional ? [""] : []).concat(["false", "true"])) control.append(new Option(n || "(none)", n));
    } else if (isPrimitive(s)) {
      control = document.createElement("input");
      control.type = s.type === "string" ? "text" : "number";
      if (s.type === "integer") control.step = "1";
      if (s.type === "number") control.step = "any";
    } else {
      control = document.createElement("textarea");
      control.rows = 2;
      control.spellcheck = false;
    }
    control.id = id;
    control.dataset.field = name;
    control.addEventListener("input", onInput);
    control.addEventListener("change", onInput);
    row.append(label, control);
    container.append(row);
    fields.push({ name, schema: s, optional, control });
  };
  if (schema.type === "object" && schema.properties) {
    for (const [name, s] of Object.entries(schema.properties)) add(name, s, (schema.required || []).includes(name));
  } else if (isPrimitive(unwrapOptional(schema).schema)) {
    add("", schema, true);
  }
  return fields;
}

// The value a field's control holds: `undefined` when empty (so an optional field is left
// out), the text itself when it does not parse (so validation names the field).
function readField(f) {
  const raw = f.control.value;
  if (raw === "") return f.schema.type === "string" && !f.optional ? "" : undefined;
  if (f.control.tagName === "TEXTAREA") {
    try { return JSON.parse(raw); } catch (_) { return raw; }
  }
  if (f.schema.type === "integer" || f.schema.type === "number") return raw.trim() === "" || isNaN(Number(raw)) ? raw : Number(raw);
  if (f.schema.type === "boolean") return raw === "true";
  return raw;
}

function writeField(f, value) {
  if (value === undefined || value === null) f.control.value = "";
  else if (f.control.tagName === "TEXTAREA") f.control.value = JSON.stringify(value);
  else f.control.value = String(value);
}

function setupCallForm() {
  const form = document.getElementById("call-form");
  if (!form) return;
  const service = form.dataset.service;
  const select = document.getElementById("endpoint");
  const request = document.getElementById("request");
  const type = document.getElementById("request-type");
  const doc = document.getElementById("endpoint-doc");
  const fieldBox = document.getElementById("fields");
  const errors = document.getElementById("request-errors");
  const button = document.getElementById("call-button");
  const reply = document.getElementById("reply");
  const status = document.getElementById("reply-status");
  const time = document.getElementById("reply-time");
  const body = document.getElementById("reply-body");
  const edited = new Map(); // what was typed per endpoint, kept across switches

  let current = select.value;
  let schema = {};
  let fields = [];
  // The endpoint's stream kind ("", "server", "client", "bidi"); an open stream's socket.
  let stream = "";
  let socket = null;
  const many = () => stream === "client" || stream === "bidi";

  function showErrors(list) {
    errors.replaceChildren(...list.map((e) => Object.assign(document.createElement("li"), { textContent: e })));
    errors.hidden = list.length === 0;
    for (const f of fields) {
      const mine = list.some((e) => (f.name ? e.startsWith(f.name + ":") || e.startsWith(f.name + ".") || e.startsWith(f.name + "[") : e.startsWith("request")));
      f.control.classList.toggle("invalid", mine);
    }
  }

  // Fields -> JSON.
  function fromFields() {
    let value;
    if (fields.length === 1 && fields[0].name === "") {
      value = readField(fields[0]);
    } else {
      value = {};
      for (const f of fields) {
        const v = readField(f);
        if (v !== undefined) value[f.name] = v;
      }
    }
    request.value = value === undefined ? "" : JSON.stringify(value, null, 2);
    showErrors([]);
  }

  // JSON -> fields, when it parses.
  function toFields() {
    if (many()) return;
    let value;
    try { value = request.value.trim() === "" ? null : JSON.parse(request.value); } catch (_) { return; }
    if (fields.length === 1 && fields[0].name === "") writeField(fields[0], value);
    else if (value && typeof value === "object" && !Array.isArray(value)) for (const f of fields) writeField(f, value[f.name]);
    showErrors([]);
  }

  function chosen() {
    const option = select.selectedOptions[0];
    const rq = option ? option.dataset.request : "";
    try { schema = option ? JSON.parse(option.dataset.schema || "{}") : {}; } catch (_) { schema = {}; }
    stream = option ? option.dataset.stream || "" : "";
    type.textContent = rq ? `${rq} → ${option.dataset.response}${stream ? ` (${stream} stream)` : ""}` : "";
    doc.textContent = option ? option.dataset.doc || "" : "";
    button.textContent = stream ? "Open stream" : "Call";
    if (many()) {
      // A stream of requests: a JSON array, one message per element.
      request.placeholder = `a JSON array of ${rq}: one message each`;
      fieldBox.replaceChildren();
      fields = [];
    } else {
      request.placeholder = schema.type === "null" ? "no request: leave empty" : `JSON for ${rq}`;
      fields = buildFields(fieldBox, schema, fromFields);
    }
    if (edited.has(select.value)) {
      request.value = edited.get(select.value);
    } else {
      const start = many() ? [sample(schema)] : sample(schema);
      request.value = start === null ? "" : JSON.stringify(start, null, 2);
    }
    toFields();
    current = select.value;
  }
  select.addEventListener("change", () => {
    edited.set(current, request.value);
    chosen();
  });
  request.addEventListener("input", toFields);
  chosen();

  document.querySelectorAll("[data-try]").forEach((b) =>
    b.addEventListener("click", () => {
      edited.set(current, request.value);
      select.value = b.dataset.try;
      chosen();
      (fields[0] ? fields[0].control : request).focus();
    }),
  );

  form.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
      ev.preventDefault();
      form.requestSubmit();
    }
  });

  // Opens the endpoint's stream over a WebSocket; replies appear as they arrive, and the
  // button stops the stream.
  function openStream(value) {
    const url = new URL(path("api", "stream", service, select.value), location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const started = performance.now();
    const lines = [];
    let ended = false;
    const show = (label, ok) => {
      status.textContent = label;
      status.className = "status " + (ok ? "ok" : "bad");
      const ms = performance.now() - started;
      time.textContent = `${select.value} · ${lines.length} repl${lines.length === 1 ? "y" : "ies"} · ${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
      body.textContent = lines.join("\n");
    };
    const done = () => {
      socket = null;
      button.textContent = "Open stream";
    };
    socket = new WebSocket(url);
    button.textContent = "Stop";
    reply.hidden = false;
    show("streaming…", true);
    socket.onopen = () => {
      if (many()) {
        for (const item of value) socket.send(JSON.stringify(item));
        socket.send("");
      } else {
        socket.send(JSON.stringify(value));
      }
    };
    socket.onmessage = (m) => {
      let event;
      try { event = JSON.parse(m.data); } catch (_) { return; }
      if ("message" in event) {
        lines.push(JSON.stringify(event.message));
        show("streaming…", true);
      } else if ("end" in event) {
        ended = true;
        show("ended", true);
      } else if (event.error) {
        ended = true;
        show(`${event.error.code} ${event.error.status || "error"}`, false);
        lines.push(JSON.stringify(event.error, null, 2));
        body.textContent = lines.join("\n");
      }
    };
    socket.onclose = () => {
      if (!ended) show("stopped", false);
      done();
    };
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!select.value) return;
    if (socket) {
      socket.close();
      return;
    }
    let value;
    try {
      value = request.value.trim() === "" ? null : JSON.parse(request.value);
    } catch (err) {
      showErrors([`the request is not valid JSON: ${err.message}`]);
      return;
    }
    let problems;
    if (many()) {
      problems = Array.isArray(value)
        ? value.flatMap((item, i) => validate(schema, item, `request[${i}]`, []))
        : ["a stream of requests is a JSON array, one element per message"];
    } else {
      problems = validate(schema, value, "", []);
    }
    if (problems.length) {
      showErrors(problems);
      return;
    }
    showErrors([]);
    if (stream) {
      openStream(value);
      return;
    }
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
function drawSpark(line, values, scale) {
  if (!line) return;
  const max = Math.max(1, scale || 0, ...values);
  const step = 300 / (SAMPLES - 1);
  const first = SAMPLES - Math.max(values.length, 2);
  const shown = values.length === 1 ? [values[0], values[0]] : values;
  const points = shown.map((v, i) => `${((first + i) * step).toFixed(1)},${(46 - (v / max) * 40).toFixed(1)}`);
  line.setAttribute("points", points.join(" "));
  const area = line.parentNode.querySelector("polygon");
  if (area) area.setAttribute("points", `${(first * step).toFixed(1)},48 ${points.join(" ")} 300,48`);
}

// A latency percentile (seconds) from the calls that fell into cumulative buckets
// `[[upper bound, count], …]` since the last sample, as Prometheus' histogram_quantile
// reads them: linear within the bucket the rank falls in. JSON has no infinity: the last
// bound arrives as null.
function quantile(q, buckets) {
  const total = buckets.length ? buckets[buckets.length - 1][1] : 0;
  if (total <= 0) return null;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const [bound, count] of buckets) {
    if (count >= rank) {
      if (bound === null || !isFinite(bound)) return lower;
      const inBucket = count - below;
      return inBucket > 0 ? lower + ((bound - lower) * (rank - below)) / inBucket : bound;
    }
    if (bound !== null) lower = bound;
    below = count;
  }
  return lower;
}

function fixed(v) {
  return v === null ? "–" : v < 10 ? v.toFixed(2) : Math.round(v).toLocaleString();
}

// The charts of a service page: per endpoint, calls/s, errors/s and p50/p90/p99 latency
// over the last minute, from differences between samples of the nodes' metrics.
function setupCharts() {
  document.querySelectorAll("[data-metrics]").forEach((el) => {
    const service = el.dataset.metrics;
    const note = el.querySelector("[data-metrics-note]");
    const box = el.querySelector(".endpoint-charts");
    const state = new Map();

    function block(name) {
      let s = state.get(name);
      if (s) return s;
      const div = document.createElement("div");
      div.className = "endpoint-chart";
      div.dataset.endpoint = name;
      const h = document.createElement("h3");
      h.textContent = name;
      const numbers = document.createElement("div");
      numbers.className = "numbers";
      for (const [key, label] of [["rate", "calls/s"], ["error_rate", "errors/s"], ["p50", "p50 ms"], ["p90", "p90 ms"], ["p99", "p99 ms"]]) {
        const d = document.createElement("div");
        const v = document.createElement("span");
        v.dataset.m = key;
        v.textContent = "–";
        const l = document.createElement("label");
        l.textContent = label;
        d.append(v, l);
        numbers.append(d);
      }
      div.append(h, numbers);
      const charts = {};
      for (const [key, label] of [["rate", "calls per second"], ["errors", "errors per second"], ["latency", "p50 and p99 latency"]]) {
        const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
        svg.setAttribute("class", `spark ${key}`);
        svg.setAttribute("viewBox", "0 0 300 48");
        svg.setAttribute("preserveAspectRatio", "none");
        svg.setAttribute("aria-label", label);
        svg.dataset.chart = key;
        const area = document.createElementNS("http://www.w3.org/2000/svg", "polygon");
        const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
        svg.append(area, line);
        if (key === "latency") {
          const p99 = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
          p99.setAttribute("class", "p99");
          svg.append(p99);
        }
        charts[key] = svg;
        div.append(svg);
      }
      box.append(div);
      s = { div, charts, last: null, rate: [], errors: [], p50: [], p99: [] };
      state.set(name, s);
      return s;
    }

    function push(list, v) {
      list.push(v);
      if (list.length > SAMPLES) list.shift();
    }

    function render(report, now) {
      if (!report) {
        note.textContent = "metrics unreachable";
        return;
      }
      if (!report.nodes) {
        note.textContent = "no node serves metrics: start it with MICRO_METRICS_ADDRESS (feature prometheus)";
        return;
      }
      note.textContent = `from the Prometheus metrics of ${report.answered} of ${report.nodes} node(s)`;
      for (const [name, e] of Object.entries(report.endpoints)) {
        const s = block(name);
        const set = (k, v) => {
          s.div.querySelector(`[data-m="${k}"]`).textContent = fixed(v);
          s.div.dataset[k] = v === null ? "" : String(v);
        };
        s.div.dataset.requests = String(e.requests);
        if (s.last && e.requests >= s.last.requests) {
          const secs = (now - s.last.at) / 1000;
          const rate = (e.requests - s.last.requests) / secs;
          const errorRate = Math.max(0, e.errors - s.last.errors) / secs;
          const delta = e.buckets.map(([b, c]) => {
            const before = s.last.buckets.find(([lb]) => lb === b);
            return [b, c - (before ? before[1] : 0)];
          });
          const ms = (q) => {
            const v = quantile(q, delta);
            return v === null ? null : v * 1000;
          };
          const [p50, p90, p99] = [ms(0.5), ms(0.9), ms(0.99)];
          set("rate", rate);
          set("error_rate", errorRate);
          set("p50", p50);
          set("p90", p90);
          set("p99", p99);
          push(s.rate, rate);
          push(s.errors, errorRate);
          push(s.p50, p50 === null ? 0 : p50);
          push(s.p99, p99 === null ? 0 : p99);
          drawSpark(s.charts.rate.querySelector("polyline"), s.rate);
          drawSpark(s.charts.errors.querySelector("polyline"), s.errors);
          drawSpark(s.charts.latency.querySelector("polyline"), s.p50, Math.max(...s.p99));
          drawSpark(s.charts.latency.querySelector("polyline.p99"), s.p99);
        }
        s.last = { requests: e.requests, errors: e.errors, buckets: e.buckets, at: now };
      }
    }

    async function poll() {
      let report = null;
      try {
        const res = await fetch(path("api", "metrics", service));
        if (res.ok) report = await res.json();
      } catch (_) { /* shown as unreachable */ }
      render(report, performance.now());
      setTimeout(poll, POLL_MS);
    }

    poll();
  });
}

setupCallForm();
setupStats();
setupCharts();
