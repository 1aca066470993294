// The model registry beyond browsing: register a version (an ONNX upload, or a model already in MLife's object
// store), revert an alias, ask the gate about a version before requesting a deployment, and each function's
// production version as BAM follows it.
import { act, api, can, card, field, fmt, fmtDate, h, has, link, select, short, table, text, toast, upload } from "/ui/lib.js";
import { gateView } from "/ui/pages/gate.js";

const rerender = () => window.dispatchEvent(new HashChangeEvent("hashchange"));
const tagList = (v) => String(v || "").split(",").map((x) => x.trim()).filter(Boolean);
const opened = (v) => { toast(`Registered ${fmt(v.name)} v${fmt(v.version)}`); location.hash = `#/models/${encodeURIComponent(v.name)}`; };

function registerForm() {
  const bar = h("progress", { max: 100, value: 0, hidden: true, "aria-label": "upload of the model" });
  const form = h("form", { class: "stack", "aria-label": "Register a model version" },
    field("Model name *", h("input", { name: "name", required: true, maxlength: 200 })),
    field("ONNX file *", h("input", { name: "file", type: "file", required: true, accept: ".onnx" })),
    field("Description", h("input", { name: "description", maxlength: 10000 })), field("Tags (comma separated)", h("input", { name: "tags" })),
    h("div", {}, h("button", { type: "submit" }, "Register version"), " ", bar));
  form.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
    const f = new FormData(form); const name = String(f.get("name")).trim();
    bar.hidden = false;
    const v = await upload(`/api/msm/models/${encodeURIComponent(name)}/versions`, { description: f.get("description"), tags: tagList(f.get("tags")) },
      f.get("file"), (done, total) => { bar.value = Math.round((100 * done) / total); });
    opened(v);
  }); });
  return form;
}

function importForm() {
  const form = h("form", { class: "stack", "aria-label": "Import a model version" },
    field("Model name *", h("input", { name: "name", required: true, maxlength: 200 })),
    field("Object key in MLife's store *", h("input", { name: "source_key", required: true, placeholder: "mtt/models/<task>/model.onnx" })),
    field("Description", h("input", { name: "description", maxlength: 10000 })), field("Tags (comma separated)", h("input", { name: "tags" })),
    h("div", {}, h("button", { type: "submit" }, "Import version")));
  form.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
    const f = new FormData(form); const name = String(f.get("name")).trim();
    const v = await api("POST", `/api/msm/models/${encodeURIComponent(name)}/versions/import`, { json: { source_key: String(f.get("source_key")).trim(),
      description: f.get("description") || "", tags: tagList(f.get("tags")) } });
    opened(v);
  }); });
  return form;
}

// The registry page's extra cards: registering (engineers) and BAM's production version per function.
export async function registryCards() {
  const production = has("GET", "/api/bam/production") ? await api("GET", "/api/bam/production").catch(() => null) : null;
  return [can("engineer") && has("POST", "/api/msm/models/{name}/versions")
    ? card("Register a model version", h("div", { class: "grid" }, h("div", {}, h("h3", {}, "Upload an ONNX file"), registerForm()),
      has("POST", "/api/msm/models/{name}/versions/import") ? h("div", {}, h("h3", {}, "or a model already stored (e.g. a task's upload)"), importForm()) : null)) : null,
  production ? card("Production version per function (what badcase statuses follow)", table([{ label: "Function", render: (p) => text(p.function) },
    { label: "Model", render: (p) => (p.model_name ? link(`#/models/${encodeURIComponent(p.model_name)}`, `${text(p.model_name)} v${text(p.model_version)}`) : "none promoted yet") },
    { label: "Promoted", render: (p) => fmtDate(p.promoted_at) }], production, { empty: "No function has a production version yet." })) : null];
}

// A button per alias: move it back to where it pointed before its last move.
export function revertButton(name, alias) {
  if (!can("engineer") || !has("POST", "/api/msm/models/{name}/aliases/{alias}/revert")) return "";
  return h("button", { type: "button", class: "secondary small", "aria-label": `revert ${alias}`, onclick: () => act(async () => {
    const c = await api("POST", `/api/msm/models/${encodeURIComponent(name)}/aliases/${encodeURIComponent(alias)}/revert`, { json: { reason: "reverted from the web UI" } });
    toast(`${alias} reverted${c.to_version_id ? ` to ${short(c.to_version_id)}` : ""}`); rerender();
  }) }, "Revert");
}

// "What would the gate say now?" for a version: the same evidence and rules as a deployment request, nothing recorded.
export function gateCheckCard(m) {
  const versions = m.versions || [];
  if (!versions.length || !has("GET", "/api/msm/model-versions/{version_id}/gate")) return null;
  const out = h("div", { role: "status" });
  const form = h("form", { class: "inline", "aria-label": "Check the gate" },
    field("Version", select("version_id", versions.map((v) => [v.id, `v${v.version}`]), versions[versions.length - 1].id)),
    field("Metric (optional)", h("input", { name: "metric", placeholder: "test_split.accuracy", size: 18 })),
    field("Min", h("input", { name: "min", type: "number", step: "any" })), field("Max", h("input", { name: "max", type: "number", step: "any" })),
    h("button", { type: "submit" }, "Check the gate"));
  form.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
    const f = new FormData(form);
    const g = await api("GET", `/api/msm/model-versions/${f.get("version_id")}/gate`, { query: { metric: f.get("metric"), min: f.get("min"), max: f.get("max") } });
    const verdict = g.awaiting ? "awaiting_tests" : g.passed ? "passed" : "blocked";
    out.replaceChildren(h("div", { "data-gate": verdict }, gateView({ gate: g })));
  }); });
  return card("Gate check (nothing is recorded)", form, out);
}
