// Shared helpers: the API client (session cookie + CSRF header), DOM building that only ever sets
// text (never innerHTML with data), charts, and "service not available" handling.

export const state = { me: null, csrf: null, api: null };

export class ApiError extends Error {
  constructor(status, error, detail) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status; this.error = error; this.detail = detail;
  }
}

// Roles, lowest first, as the server declares them (the user schema's role enum in the merged OpenAPI).
export function roles() { return schemaEnum("UserCreate", "role"); }
export function can(role) {
  const order = roles();
  return !!state.me && order.includes(role) && order.indexOf(state.me.role) >= order.indexOf(role);
}

function url(path, query) {
  const u = new URL(path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v === undefined || v === null || v === "") continue;
    if (Array.isArray(v)) v.forEach((x) => u.searchParams.append(k, x)); else u.searchParams.set(k, v);
  }
  return u;
}

export async function api(method, path, { json, body, query, headers } = {}) {
  const h = { ...(headers || {}) };
  if (json !== undefined) { h["Content-Type"] = "application/json"; body = JSON.stringify(json); }
  if (method !== "GET" && state.csrf) h["X-CSRF-Token"] = state.csrf;
  const r = await fetch(url(path, query), { method, headers: h, body, credentials: "same-origin" });
  if (r.status === 204) return null;
  const type = r.headers.get("content-type") || "";
  const data = type.includes("json") ? await r.json() : await r.text();
  if (!r.ok) {
    if (r.status === 401 && !path.endsWith("/login")) window.dispatchEvent(new Event("mlife:logged-out"));
    throw new ApiError(r.status, (data && data.error) || "Error", (data && data.detail) ?? data);
  }
  return data;
}

// Upload with progress (fetch has no upload progress): XMLHttpRequest, CSRF header, raw body.
export function upload(path, query, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url(path, query));
    if (state.csrf) xhr.setRequestHeader("X-CSRF-Token", state.csrf);
    xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded, e.total); };
    xhr.onload = () => {
      let data = null;
      try { data = JSON.parse(xhr.responseText); } catch { data = xhr.responseText; }
      if (xhr.status >= 200 && xhr.status < 300) resolve(data);
      else reject(new ApiError(xhr.status, data && data.error, data && data.detail));
    };
    xhr.onerror = () => reject(new ApiError(0, "NetworkError", "the upload was interrupted"));
    xhr.send(file);
  });
}

// The merged OpenAPI tells which services are up and which routes exist: pages never call a route
// that is not there (no 404/503 noise), and say "service not available" instead.
export async function loadApi() {
  try { state.api = await api("GET", "/openapi.json"); } catch { state.api = { paths: {} }; }
}
// Enumerations come from the merged OpenAPI, never copied by hand: a value the server adds shows up in the UI.
function enumIn(schema) {
  if (!schema) return [];
  if (schema.$ref) return enumIn(state.api.components.schemas[schema.$ref.split("/").pop()]);
  if (Array.isArray(schema.enum)) return schema.enum;
  if (schema.items) return enumIn(schema.items);
  if (schema.additionalProperties && typeof schema.additionalProperties === "object") return enumIn(schema.additionalProperties);
  for (const alt of schema.anyOf || schema.oneOf || schema.allOf || []) { const e = enumIn(alt); if (e.length) return e; }
  return [];
}
// The values of property `prop` of the component schema `name` ([] when the service is not there).
export function schemaEnum(name, prop) {
  const schemas = (state.api && state.api.components && state.api.components.schemas) || {};
  return schemas[name] && schemas[name].properties ? enumIn(schemas[name].properties[prop]) : [];
}
// The values of the query/path parameter `param` of an operation.
export function paramEnum(method, path, param) {
  const op = state.api && state.api.paths && state.api.paths[path] && state.api.paths[path][method.toLowerCase()];
  const p = op && (op.parameters || []).find((x) => x.name === param);
  return p ? enumIn(p.schema) : [];
}
export function has(method, path) {
  const op = state.api && state.api.paths && state.api.paths[path];
  return !!(op && op[method.toLowerCase()]);
}

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "value") el.value = v;
    else if (k === "checked" || k === "selected") { el[k] = !!v; el.setAttribute(k, ""); } // also the default, for form.reset()
    else if (k === "disabled" || k === "hidden" || k === "multiple") el[k] = !!v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}
function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(fmt(c)));
  }
}

// The one formatter for a value shown as text: a missing value (null, undefined, NaN) is empty, never "null";
// a list is its items, an object its "key: value" pairs (missing ones left out), never raw JSON.
export function fmt(v) {
  if (v === null || v === undefined || (typeof v === "number" && Number.isNaN(v))) return "";
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "bigint") return String(v);
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (Array.isArray(v)) return v.map(fmt).filter((x) => x !== "").join(", ");
  if (typeof v === "object") {
    return Object.entries(v).map(([k, x]) => [k, fmt(x)]).filter(([, x]) => x !== "").map(([k, x]) => `${k}: ${x}`).join("; ");
  }
  return String(v);
}
export const text = fmt;
// A value in a cell or a definition list: an em dash when there is none.
export function orDash(v) { const s = fmt(v); return s === "" ? "\u2014" : s; }
export function fmtDate(s) { return s ? new Date(s).toLocaleString() : ""; }
export function fmtNum(n, d = 2) { return typeof n === "number" ? (Number.isInteger(n) ? String(n) : n.toFixed(d)) : text(n); }
export function badge(v) { return text(v) ? h("span", { class: `badge ${text(v)}` }, text(v)) : ""; }
export function short(id) { return text(id).slice(0, 8); }
// A link to another page, or nothing when the target is unknown (never a link to "null").
export function link(href, label) { return href ? h("a", { href }, text(label)) : ""; }
export function hashQuery(query) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  return q.toString();
}
export function badcasesOf(query) { return `#/badcases?${hashQuery(query)}`; }
export const SET_NAMES = { test_split: "test split", badcase_test_set: "badcase test set", other: "other set" };

export function card(title, ...children) { return h("section", { class: "card" }, h("h2", {}, title), ...children); }

export function table(columns, rows, { empty = "Nothing yet." } = {}) {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return h("table", {},
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: c.num ? "num" : null, scope: "col" }, c.label)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, columns.map((c) => h("td", { class: c.num ? "num" : null },
      c.render ? c.render(r) : fmt(r[c.key])))))));
}

export function field(label, input) { return h("label", {}, label, input); }
export function select(name, options, value) {
  return h("select", { name }, options.map((o) => {
    const [v, l] = Array.isArray(o) ? o : [o, o === "" ? "any" : o];
    return h("option", { value: v, selected: v === value }, l);
  }));
}

export function unavailable(what) { return h("p", { class: "unavailable" }, `${what}: service not available`); }
export function errorText(err) {
  if (err instanceof ApiError) return `${fmt(err.error) || "Error"}: ${fmt(err.detail)}`;
  return String(err);
}
export function toast(message, isError = false) {
  const box = document.getElementById("toast");
  const el = h("div", { class: isError ? "error" : "" }, message);
  box.append(el);
  setTimeout(() => el.remove(), isError ? 8000 : 3500);
}
// Run an action from a button: errors are shown, never thrown to the console.
export async function act(fn) {
  try { return await fn(); } catch (err) { toast(errorText(err), true); return undefined; }
}

const charts = new Set();
export function destroyCharts() { for (const c of charts) c.destroy(); charts.clear(); }
export function chart(type, labels, datasets, options = {}) {
  const canvas = h("canvas", { role: "img", "aria-label": options.label || "chart" });
  const wrap = h("div", { class: "chart" }, canvas);
  const palette = ["#1f5fbf", "#b3261e", "#1e7a3c", "#c77700", "#6b3fa0", "#00838f", "#8d6e63", "#546e7a"];
  datasets.forEach((d, i) => { if (!d.backgroundColor) { d.backgroundColor = palette[i % palette.length]; d.borderColor = palette[i % palette.length]; } });
  const c = new window.Chart(canvas, {
    type, data: { labels, datasets },
    options: { responsive: true, maintainAspectRatio: false, animation: false,
      plugins: { legend: { display: datasets.length > 1 || type === "pie" } },
      scales: type === "pie" || type === "doughnut" ? {} : { x: { stacked: !!options.stacked }, y: { stacked: !!options.stacked, beginAtZero: true } } },
  });
  canvas.dataset.points = String(datasets.reduce((n, d) => n + d.data.length, 0));
  charts.add(c);
  return wrap;
}
export function countBy(rows, key) {
  const m = new Map();
  for (const r of rows) { const k = text(typeof key === "function" ? key(r) : r[key]) || "(none)"; m.set(k, (m.get(k) || 0) + 1); }
  return [...m.entries()].sort((a, b) => b[1] - a[1]);
}

// A "replay from" form's fields (a local time, or a stream and a sequence) and the API body they make.
export function replayFields(streamHint = "") {
  return [field("Since (local time)", h("input", { name: "since", type: "datetime-local", step: 1 })),
    field("or stream", h("input", { name: "stream", placeholder: streamHint, size: 12 })),
    field("from sequence", h("input", { name: "sequence", type: "number", min: 1, size: 8 }))];
}
export function replayBody(form) {
  const f = new FormData(form);
  return f.get("since") ? { since: new Date(String(f.get("since"))).toISOString() }
    : { stream: f.get("stream") || null, sequence: f.get("sequence") ? Number(f.get("sequence")) : null };
}
