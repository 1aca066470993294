// A deployment's life after the request: badcases attached by hand, and values of its user-defined metrics.
import { act, api, can, field, h, has, schemaEnum, toast } from "/ui/lib.js";

const rerender = () => window.dispatchEvent(new HashChangeEvent("hashchange"));

function attachForm(d) {
  const form = h("form", { class: "inline", "aria-label": "Attach badcases" },
    field("Badcase ids (comma or space separated)", h("input", { name: "badcase_ids", required: true, size: 40 })),
    field("Note", h("input", { name: "note", maxlength: 2000 })), h("button", { type: "submit" }, "Attach"));
  form.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
    const f = new FormData(form);
    const ids = String(f.get("badcase_ids")).split(/[\s,]+/).filter(Boolean);
    await api("POST", `/api/msm/deployments/${d.id}/badcases`, { json: { badcase_ids: ids, note: f.get("note") || "" } });
    toast(`${ids.length} badcase(s) attached`); rerender();
  }); });
  return form;
}

// One input per metric the deployment declared (its metrics schema: name → type).
function metricsForm(d) {
  const schema = d.metrics_schema || {};
  const names = Object.keys(schema);
  if (!names.length) return h("p", { class: "muted" }, "This deployment declared no user metrics (its request's metrics schema).");
  const input = (n) => (schema[n] === "boolean" ? h("input", { name: n, type: "checkbox", value: "1" })
    : h("input", { name: n, type: schema[n] === "string" ? "text" : "number", step: schema[n] === "integer" ? 1 : "any" }));
  const form = h("form", { class: "inline", "aria-label": "Record metrics" }, names.map((n) => field(`${n} (${schema[n]})`, input(n))),
    h("button", { type: "submit" }, "Record"));
  form.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
    const f = new FormData(form); const values = {};
    for (const n of names) {
      const v = f.get(n);
      if (schema[n] === "boolean") values[n] = v === "1";
      else if (v !== null && v !== "") values[n] = schema[n] === "string" ? String(v) : Number(v);
    }
    await api("POST", `/api/msm/deployments/${d.id}/metrics`, { json: { values } });
    toast("Metrics recorded"); rerender();
  }); });
  return form;
}

export const operateForms = {
  attach: (d) => (can("engineer") && has("POST", "/api/msm/deployments/{deployment_id}/badcases") ? attachForm(d) : null),
  metrics: (d) => (can("engineer") && has("POST", "/api/msm/deployments/{deployment_id}/metrics") ? metricsForm(d) : null),
};

// "name:type, …" → {name: type} for a deployment request; the types are the server's.
export function metricsSchemaField() {
  const types = schemaEnum("DeploymentCreate", "metrics_schema");
  return field(`User metrics (name:type, comma separated; types: ${types.join(", ")})`, h("input", { name: "metrics_schema", placeholder: "latency_ms:number, approved:boolean" }));
}
export function readMetricsSchema(value) {
  const out = {};
  for (const pair of String(value || "").split(",").map((x) => x.trim()).filter(Boolean)) {
    const [name, type] = pair.split(":").map((x) => x.trim());
    out[name] = type || "number";
  }
  return out;
}
