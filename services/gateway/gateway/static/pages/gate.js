// The deployment gate as the pages show it: thresholds (read and edited), the verdict, its reasons and evidence.
import { badge, field, h, link, select, SET_NAMES, short, table, text } from "/ui/lib.js";

// Thresholds name the set they apply to: `test_split.accuracy`, `badcase_test_set.accuracy`.
export function thresholdsText(t) {
  return Object.entries(t || {}).map(([k, b]) => {
    const [set, metric] = k.includes(".") ? [k.slice(0, k.indexOf(".")), k.slice(k.indexOf(".") + 1)] : ["test_split", k];
    const bounds = [b && b.min != null ? `≥ ${b.min}` : null, b && b.max != null ? `≤ ${b.max}` : null].filter(Boolean).join(", ");
    return `${metric} on the ${SET_NAMES[set] ?? set} ${bounds}`;
  }).join("; ");
}

// Rows of "set / metric / min / max" inputs → {"<set>.<metric>": {min, max}}.
export function thresholdRows(initial) {
  const box = h("div", { class: "thresholds" });
  const add = (key = "", bound = {}) => {
    const [set, metric] = key.includes(".") ? [key.slice(0, key.indexOf(".")), key.slice(key.indexOf(".") + 1)] : ["test_split", key || "accuracy"];
    const row = h("div", { class: "row threshold" },
      field("Set", select("t_set", [["test_split", "test split"], ["badcase_test_set", "badcase test set"]], set)),
      field("Metric", h("input", { name: "t_metric", value: metric, size: 12 })),
      field("Min", h("input", { name: "t_min", type: "number", step: "any", value: bound.min ?? "" })),
      field("Max", h("input", { name: "t_max", type: "number", step: "any", value: bound.max ?? "" })),
      h("button", { type: "button", class: "secondary", "aria-label": "remove this threshold", onclick: () => row.remove() }, "✕"));
    box.append(row);
  };
  for (const [k, b] of Object.entries(initial || {})) add(k, b);
  const addBtn = h("button", { type: "button", class: "secondary", onclick: () => add() }, "Add a threshold");
  const read = () => {
    const out = {};
    for (const row of box.querySelectorAll(".threshold")) {
      const v = (n) => row.querySelector(`[name=${n}]`).value.trim();
      if (!v("t_metric") || (v("t_min") === "" && v("t_max") === "")) continue;
      const bound = {};
      if (v("t_min") !== "") bound.min = Number(v("t_min"));
      if (v("t_max") !== "") bound.max = Number(v("t_max"));
      out[`${v("t_set")}.${v("t_metric")}`] = bound;
    }
    return out;
  };
  return { el: h("div", {}, box, addBtn), read };
}

export function verdictOf(d) {
  const g = (d && d.gate) || {};
  if (d && d.status === "awaiting_tests") return "awaiting tests";
  if (g.awaiting) return "awaiting tests";
  if (g.verdict || g.status) return g.verdict ?? g.status;
  if (g.passed === true) return "passed";
  if (g.passed === false) return "blocked";
  return "";
}

export const badcaseLinks = (ids, label) => h("div", { "aria-label": label }, h("p", { class: "error" }, `${ids.length} ${label}:`),
  h("ul", {}, ids.map((id) => h("li", {}, link(`#/badcases/${text(id)}`, text(id))))));

// The evidence the gate waits for / decided on: each version on each set, with its state and reason.
export function evidenceView(g) {
  const evidence = g.evidence || [];
  if (!evidence.length) return null;
  const count = (state) => evidence.filter((e) => e.state === state).length;
  const done = count("done");
  const parts = [`${done} of ${evidence.length} done`, count("failed") ? `${count("failed")} failed` : null,
    count("pending") ? `${count("pending")} pending` : null].filter(Boolean).join(", ");
  return h("div", { class: "evidence" },
    h("p", {}, h("strong", {}, "Test results: "), parts,
      h("progress", { max: evidence.length, value: evidence.length - count("pending"), "aria-label": "test results received" })),
    table([{ label: "Version", render: (e) => [text(e.model), text(e.version) ? ` v${text(e.version)}` : "", e.role === "production" ? " (production)" : ""].join("") },
      { label: "Set", render: (e) => text(SET_NAMES[e.set_kind] ?? e.set_kind) }, { label: "Dataset", render: (e) => short(e.dataset_id) },
      { label: "State", render: (e) => badge(e.state) }, { label: "Reason", render: (e) => text(e.reason) }], evidence));
}

export function gateView(d) {
  const g = d.gate || {};
  const regressed = g.regressed_badcases || [];
  const untested = g.untested_badcases || [];
  const reasons = (g.reasons || []).map(text).filter(Boolean);
  return h("div", { class: "gate" }, h("p", {}, "Gate verdict: ", badge(verdictOf(d)) || "none yet",
      d.overridden ? ` — overridden by ${text(d.override_by)}: ${text(d.override_reason)}` : ""),
    d.status === "awaiting_tests" ? h("p", { class: "muted", role: "status" },
      "Waiting for test results of the candidate (and of production) before the gate decides; this page refreshes by itself.") : null,
    g.reason ? h("p", {}, text(g.reason)) : null,
    reasons.length ? h("ul", { "aria-label": "reasons" }, reasons.map((r) => h("li", {}, r))) : null,
    (g.notes || []).length ? h("ul", { class: "muted" }, g.notes.map((n) => h("li", {}, text(n)))) : null,
    Object.keys(g.thresholds || d.thresholds || {}).length ? h("p", {}, "Thresholds: ", thresholdsText(g.thresholds || d.thresholds)) : null,
    evidenceView(g),
    regressed.length ? badcaseLinks(regressed, "previously fixed badcase(s) regressed") : null,
    untested.length ? badcaseLinks(untested, "badcase(s) production passes that the candidate was not tested on") : null,
    Object.keys(g).length ? h("details", {}, h("summary", {}, "Gate details"), h("pre", {}, JSON.stringify(g, null, 2))) : null);
}
