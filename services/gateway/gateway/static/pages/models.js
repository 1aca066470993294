import { errorText, fmt, act, api, badcasesOf, badge, can, card, field, fmtDate, fmtNum, h, has, link, select, short, table, text, toast, unavailable } from "/ui/lib.js";
import { metricsSchemaField, operateForms, readMetricsSchema } from "/ui/pages/operate.js";
import { gateCheckCard, registryCards, revertButton } from "/ui/pages/registry.js";
import { badcaseLinks, gateView, thresholdRows, thresholdsText, verdictOf } from "/ui/pages/gate.js";

const list = (r) => (Array.isArray(r) ? r : r.items || []);

export async function models() {
  if (!has("GET", "/api/msm/models")) return [h("h1", {}, "Models"), unavailable("MSM")];
  const items = list(await api("GET", "/api/msm/models"));
  return [h("h1", {}, "Models"), ...await registryCards(), card("Registry", table([
    { label: "Model", render: (m) => h("a", { href: `#/models/${encodeURIComponent(m.name)}` }, m.name) },
    { label: "Function", render: (m) => (m.function ? text(m.function) : h("span", { class: "muted" }, "not set (needed to deploy)")) },
    { label: "Tags", render: (m) => (m.tags || []).join(", ") },
    { label: "Description", key: "description" }, { label: "Updated", render: (m) => fmtDate(m.updated_at) }], items, { empty: "No models registered yet." }))];
}

export async function modelDetail(name) {
  const m = await api("GET", `/api/msm/models/${encodeURIComponent(name)}`);
  const history = await api("GET", `/api/msm/models/${encodeURIComponent(name)}/aliases/history`).catch(() => []);
  const versionOf = new Map((m.versions || []).map((v) => [v.id, v.version]));
  const rerender = () => window.dispatchEvent(new HashChangeEvent("hashchange"));
  let aliasForm = null;
  if (can("engineer")) {
    aliasForm = h("form", { class: "inline", "aria-label": "Move an alias" },
      field("Alias", h("input", { name: "alias", required: true, value: "production" })),
      field("Version", select("version", (m.versions || []).map((v) => [v.version, `v${v.version}`]))),
      field("Reason", h("input", { name: "reason" })),
      h("button", { type: "submit" }, "Move alias"));
    aliasForm.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
      const f = new FormData(aliasForm);
      await api("POST", `/api/msm/models/${encodeURIComponent(name)}/aliases`, { json: { alias: f.get("alias"), version: f.get("version"), reason: f.get("reason") || "" } });
      toast("Alias moved"); rerender();
    }); });
  }
  // The function the model serves: what its badcases, test sets and gate are about; needed before deploying.
  let functionForm = null;
  if (can("engineer") && has("PATCH", "/api/msm/models/{name}")) {
    functionForm = h("form", { class: "inline", "aria-label": "Set the function" },
      field("Function", h("input", { name: "function", required: true, maxlength: 200, value: text(m.function) })),
      h("button", { type: "submit" }, m.function ? "Change the function" : "Set the function"));
    functionForm.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
      const fn = String(new FormData(functionForm).get("function") || "").trim();
      await api("PATCH", `/api/msm/models/${encodeURIComponent(name)}`, { json: { function: fn } });
      toast(`Function set: ${fn}`); rerender();
    }); });
  }
  let defaults = null;
  if (m.function && has("GET", "/api/msm/functions/{function}/thresholds")) {
    const t = await api("GET", `/api/msm/functions/${encodeURIComponent(m.function)}/thresholds`).catch(() => null);
    if (t) {
      let form = null;
      if (can("maintainer") && has("PUT", "/api/msm/functions/{function}/thresholds")) {
        const rows = thresholdRows(t.thresholds);
        form = h("form", { class: "stack-narrow", "aria-label": "Default thresholds" }, rows.el,
          h("div", {}, h("button", { type: "submit" }, "Save the default thresholds")));
        form.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
          await api("PUT", `/api/msm/functions/${encodeURIComponent(m.function)}/thresholds`, { json: { thresholds: rows.read() } });
          toast("Default thresholds saved"); rerender();
        }); });
      }
      defaults = card(`Default gate thresholds of function ${text(m.function)}`,
        h("p", {}, thresholdsText(t.thresholds) || "None: a request without thresholds is judged on its test results and the function's badcases only."),
        t.updated_by ? h("p", { class: "muted" }, `set by ${text(t.updated_by)}, ${fmtDate(t.updated_at)}`) : null, form);
    }
  }
  const about = h("dl", { class: "kv" },
    h("dt", {}, "Function"), h("dd", { "data-field": "function" }, m.function
      ? [text(m.function), " — ", link(badcasesOf({ function: m.function }), "its badcases")]
      : h("span", { class: "error" }, "not set: a function is needed before deploying this model")),
    h("dt", {}, "Description"), h("dd", {}, text(m.description)),
    h("dt", {}, "Tags"), h("dd", {}, (m.tags || []).join(", ")));
  return [h("p", {}, h("a", { href: "#/models" }, "← Models")), h("h1", {}, `Model: ${fmt(m.name)}`),
    card("Model", about, h("p", { class: "muted" }, "The function is what the model serves: its badcases, badcase test set, gate and statistics are those of the function."),
      functionForm),
    card("Versions and lineage", table([{ label: "Version", key: "version" }, { label: "Format", key: "format" },
      { label: "Source", key: "source" }, { label: "Task", render: (v) => (v.task_id ? link(`#/tasks/${v.task_id}`, short(v.task_id)) : "") },
      { label: "Parent", render: (v) => (v.parent_version_id ? text(versionOf.get(v.parent_version_id) ? `v${versionOf.get(v.parent_version_id)}` : short(v.parent_version_id)) : "") },
      { label: "Metrics", render: (v) => Object.entries(v.metrics || {}).map(([k, x]) => `${k} ${fmtNum(x, 3)}`).join(", ") },
      { label: "Badcases", render: (v) => link(badcasesOf({ model_version_id: v.id }), "found on it") },
      { label: "MD5", key: "md5" }, { label: "Id", key: "id" },
      { label: "Docker context", render: (v) => (has("GET", "/api/msm/model-versions/{version_id}/docker-context")
        ? h("a", { href: `/api/msm/model-versions/${v.id}/docker-context`, download: `${m.name}-v${v.version}-docker-context.tar`,
          "data-version": text(v.version) }, "Download (.tar)") : "") }], m.versions || [])),
    await versionActions(m, rerender),
    card("Aliases", table([{ label: "Alias", render: (a) => text(a.alias ?? a.name) }, { label: "Version", render: (a) => text(a.version ?? a.version_id) },
      { label: "", render: (a) => revertButton(m.name, text(a.alias ?? a.name)) }], m.aliases || []), aliasForm),
    gateCheckCard(m),
    defaults,
    card("Alias history", table([{ label: "When", render: (c) => fmtDate(c.changed_at ?? c.created_at) }, { label: "Alias", key: "alias" },
      { label: "From", render: (c) => versionLabel(versionOf, c.from_version_id) }, { label: "To", render: (c) => versionLabel(versionOf, c.to_version_id) },
      { label: "By", render: (c) => text(c.actor ?? c.changed_by) }, { label: "Reason", render: (c) => text(c.reason) }], list(history)))];
}

// Description, tags and the test split(s) the gate requires results on (the gate names this when it is missing).
function annotateForm(versions, datasets, pick, rerender) {
  const chooser = pick();
  const tests = datasets.filter((d) => d.purpose === "test");
  const splits = h("select", { name: "test_dataset_ids", multiple: true, "aria-label": "test splits", size: Math.min(6, Math.max(2, tests.length)) },
    tests.map((d) => h("option", { value: d.id }, `${text(d.name)} v${text(d.version)}${d.function ? ` (${text(d.function)})` : ""}`)));
  const description = h("input", { name: "description", maxlength: 10000 }); const tags = h("input", { name: "tags" });
  const fill = () => {
    const v = versions.find((x) => x.id === chooser.value) || {};
    description.value = text(v.description); tags.value = (v.tags || []).join(", ");
    for (const o of splits.options) o.selected = (v.test_dataset_ids || []).includes(o.value);
  };
  chooser.addEventListener("change", fill); fill();
  const form = h("form", { class: "inline", "aria-label": "Annotate a version" }, field("Version", chooser), field("Description", description),
    field("Tags (comma separated)", tags), field("Test split(s) for the gate", splits), h("button", { type: "submit" }, "Save"));
  form.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
    await api("PATCH", `/api/msm/model-versions/${chooser.value}`, { json: { description: description.value,
      tags: tags.value.split(",").map((x) => x.trim()).filter(Boolean), test_dataset_ids: [...splits.selectedOptions].map((o) => o.value) } });
    toast("Version saved"); rerender();
  }); });
  return form;
}

// Compress a version (dynamic INT8 → a new version; MTT measures the accuracy delta on a dataset) and build its
// Docker image through the configured engine; the build context itself is a download in the versions table.
async function versionActions(m, rerender) {
  const versions = m.versions || [];
  const canCompress = can("engineer") && has("POST", "/api/msm/model-versions/{version_id}/compress");
  const canBuild = can("maintainer") && has("POST", "/api/msm/model-versions/{version_id}/docker-build");
  const canAnnotate = can("engineer") && has("PATCH", "/api/msm/model-versions/{version_id}");
  if (!versions.length || (!canCompress && !canBuild && !canAnnotate)) return null;
  const pick = () => select("version_id", versions.map((v) => [v.id, `v${v.version}`]), versions[versions.length - 1].id);
  const parts = [];
  const datasets = (canCompress || canAnnotate) && has("GET", "/api/dam/datasets") ? await api("GET", "/api/dam/datasets").then(list).catch(() => []) : [];
  if (canAnnotate) parts.push(h("h3", {}, "Annotate a version"), annotateForm(versions, datasets, pick, rerender));
  if (canCompress) {
    const form = h("form", { class: "inline", "aria-label": "Compress a version" }, field("Version", pick()),
      field("Measure the accuracy delta on", select("dataset_id", [["", "(no dataset)"], ...datasets.filter((d) => d.purpose === "test")
        .map((d) => [d.id, `${text(d.name)} v${text(d.version)}${d.is_badcase_test_set ? " (badcase test set)" : ""}`])], "")),
      h("button", { type: "submit" }, "Compress (INT8)"));
    form.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
      const f = new FormData(form);
      const body = f.get("dataset_id") ? { evaluate_on_dataset_id: f.get("dataset_id") } : {};
      const r = await api("POST", `/api/msm/model-versions/${f.get("version_id")}/compress`, { json: body });
      const c = r.compression || {};
      toast(`Compressed into v${text(r.version && r.version.version)} (${text(c.method)}): ${fmtNum(c.size_before, 0)} → ${fmtNum(c.size_after, 0)} bytes` +
        (c.dataset_id ? "; the accuracy delta is recorded when MTT has tested both versions" : ""));
      rerender();
    }); });
    parts.push(h("h3", {}, "Compression"), form);
  }
  if (canBuild) {
    const out = h("div", { role: "status" });
    const form = h("form", { class: "inline", "aria-label": "Build a Docker image" }, field("Version", pick()),
      field("Image tag", h("input", { name: "tag", required: true, value: `${m.name.toLowerCase().replace(/[^a-z0-9._/-]/g, "-")}:latest` })),
      h("button", { type: "submit" }, "Build image"));
    form.addEventListener("submit", (e) => { e.preventDefault();
      const f = new FormData(form);
      api("POST", `/api/msm/model-versions/${f.get("version_id")}/docker-build`, { json: { tag: f.get("tag") } })
        .then((r) => out.replaceChildren(h("p", { class: "okc" }, "Built: ", text(r))))
        .catch((err) => out.replaceChildren(h("p", { class: "error", role: "alert" }, errorText(err))));
    });
    parts.push(h("h3", {}, "Docker image"), h("p", { class: "muted" }, "Needs a Docker engine on the server (MLIFE_MSM_DOCKER_HOST); otherwise download the build context above."), form, out);
  }
  return card("Version actions", ...parts);
}

function versionLabel(versionOf, id) {
  if (!id) return "";
  return versionOf.has(id) ? `v${versionOf.get(id)}` : short(id);
}

export async function deployments() {
  if (!has("GET", "/api/msm/deployments")) return [h("h1", {}, "Deployments"), unavailable("MSM")];
  const listBox = h("div", {}, deploymentTable(list(await api("GET", "/api/msm/deployments"))));
  let form = null; const result = h("div", { role: "status" });
  if (has("POST", "/api/msm/deployments") && can("engineer")) {
    const [versions, models, targets] = await Promise.all([
      has("GET", "/api/msm/model-versions") ? api("GET", "/api/msm/model-versions").then(list).catch(() => []) : [],
      api("GET", "/api/msm/models").then(list).catch(() => []),
      // the deploy targets are plugins: the active ones MSM lists (built-ins first), not a schema enum
      api("GET", "/api/msm/plugins").then((r) => r.plugins.filter((p) => p.seam === "deploy_targets" && p.state === "active")
        .map((p) => p.name)).catch(() => ["local"])]);
    const functionOf = new Map(models.map((m) => [m.name, m.function]));
    const thresholds = thresholdRows({});
    form = h("form", { class: "stack", "aria-label": "Request a deployment" },
      field("Endpoint name *", h("input", { name: "name", required: true, pattern: "[a-z0-9][a-z0-9\\-]{0,99}" })),
      field("Model version *", select("version", versions.map((v) => [v.id,
        `${v.name} v${v.version}${functionOf.get(v.name) ? ` (${functionOf.get(v.name)})` : " (no function: set it on the model first)"}`]))),
      field("Target", select("target", targets, "local")),
      can("maintainer") ? field("Override reason (maintainers)", h("input", { name: "override_reason" })) : null,
      h("fieldset", { class: "wide" }, h("legend", {}, "Thresholds (none: the function's defaults)"), thresholds.el), metricsSchemaField(),
      h("div", {}, h("button", { type: "submit", disabled: !versions.length }, "Request deployment")));
    form.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
      const f = new FormData(form);
      const body = { name: f.get("name"), target: f.get("target"), versions: [{ model_version_id: f.get("version") }] };
      const t = thresholds.read();
      if (Object.keys(t).length) body.thresholds = t;
      if (f.get("override_reason")) body.override_reason = f.get("override_reason");
      const metricsSchema = readMetricsSchema(f.get("metrics_schema"));
      if (Object.keys(metricsSchema).length) body.metrics_schema = metricsSchema;
      try {
        const d = await api("POST", "/api/msm/deployments", { json: body });
        const said = d.status === "awaiting_tests" ? `Deployment ${fmt(d.name)} is waiting for test results: ` : `Deployment ${fmt(d.name)} requested: `;
        result.replaceChildren(h("p", { class: "okc" }, said, badge(d.status)), gateView(d),
          h("p", {}, h("a", { href: `#/deployments/${d.id}` }, "Open it")));
      } catch (err) {
        if (err.status !== 409 || typeof err.detail !== "object") throw err;
        result.replaceChildren(blockedView(err.detail));
      }
      listBox.replaceChildren(deploymentTable(list(await api("GET", "/api/msm/deployments"))));
    }); });
  }
  return [h("h1", {}, "Deployments"), form ? card("Request a deployment", form, result) : null,
    card("Deployments", listBox)];
}

function deploymentTable(items) {
  return table([{ label: "Name", render: (d) => h("a", { href: `#/deployments/${d.id}` }, text(d.name)) },
    { label: "Function", render: (d) => text(d.function) },
    { label: "Status", render: (d) => badge(d.status) }, { label: "Target", key: "target" }, { label: "Routing", key: "routing" },
    { label: "Gate", render: (d) => badge(verdictOf(d)) },
    { label: "Created", render: (d) => fmtDate(d.created_at) }], items, { empty: "No deployments yet." });
}

// The gate's refusal: its reasons, the regressed and untested badcases, and (maintainers) an override with a reason.
function blockedView(detail) {
  const box = h("div", {}, h("p", { class: "error" }, "Blocked by the gate: ", text(detail.message)),
    h("ul", { "aria-label": "reasons" }, (detail.reasons || []).map((r) => h("li", {}, text(r)))),
    (detail.regressed_badcases || []).length ? badcaseLinks(detail.regressed_badcases, "previously fixed badcase(s) regressed") : null,
    (detail.untested_badcases || []).length ? badcaseLinks(detail.untested_badcases, "badcase(s) production passes that the candidate was not tested on") : null);
  if (detail.deployment_id) box.append(h("p", {}, h("a", { href: `#/deployments/${detail.deployment_id}` }, "Open the blocked deployment")));
  if (detail.deployment_id && can("maintainer")) {
    const f = h("form", { class: "inline", "aria-label": "Override the gate" },
      field("Reason for the override", h("input", { name: "reason", required: true, minlength: 3 })), h("button", { type: "submit", class: "danger" }, "Override the gate"));
    f.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
      const d = await api("POST", `/api/msm/deployments/${detail.deployment_id}/override`, { json: { reason: new FormData(f).get("reason") } });
      box.replaceChildren(h("p", { class: "okc" }, `Overridden: ${fmt(d.name)} is `, badge(d.status)), gateView(d),
        h("p", {}, h("a", { href: `#/deployments/${d.id}` }, "Open it")));
    }); });
    box.append(f);
  }
  return box;
}

export async function deploymentDetail(id) {
  const d = await api("GET", `/api/msm/deployments/${id}`);
  const metrics = await api("GET", `/api/msm/deployments/${id}/metrics`).catch(() => []);
  const rerender = () => window.dispatchEvent(new HashChangeEvent("hashchange"));
  const rollback = can("maintainer") && d.status === "live" ? h("button", { type: "button", class: "danger", onclick: () => act(async () => {
    await api("POST", `/api/msm/deployments/${id}/rollback`, { json: { reason: "rolled back from the web UI" } });
    toast("Rolled back"); rerender();
  }) }, "Roll back") : null;
  let override = null;
  if (can("maintainer") && ["blocked", "awaiting_tests"].includes(d.status)) {
    override = h("form", { class: "inline", "aria-label": "Override the gate" },
      field("Reason for the override", h("input", { name: "reason", required: true, minlength: 3 })), h("button", { type: "submit", class: "danger" }, "Override the gate"));
    override.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
      await api("POST", `/api/msm/deployments/${id}/override`, { json: { reason: new FormData(override).get("reason") } });
      toast("Gate overridden"); rerender();
    }); });
  }
  const statusBox = h("div", {}, statusView(d));
  // While the gate waits for test results, follow its progress (until the page is left).
  if (d.status === "awaiting_tests") {
    const hash = location.hash;
    const poll = async () => {
      if (location.hash !== hash || !document.body.contains(statusBox)) return;
      const now = await api("GET", `/api/msm/deployments/${id}`).catch(() => null);
      if (location.hash !== hash || !document.body.contains(statusBox)) return;
      if (now && now.status !== "awaiting_tests") { rerender(); return; }
      if (now) statusBox.replaceChildren(statusView(now));
      setTimeout(poll, 2000);
    };
    setTimeout(poll, 2000);
  }
  return [h("p", {}, h("a", { href: "#/deployments" }, "← Deployments")), h("h1", {}, `Deployment: ${fmt(d.name)}`),
    card("Status", statusBox, override, rollback), await servingCard(d),
    card("Versions", table([{ label: "Model version", render: (v) => (v.name ? link(`#/models/${encodeURIComponent(v.name)}`, `${text(v.name)} v${text(v.version)}`) : short(v.model_version_id ?? v.id)) },
      { label: "Id", render: (v) => text(v.model_version_id ?? v.id) }, { label: "Role", key: "role" }, { label: "Weight", key: "weight" }], d.versions || [])),
    card("Attached badcases", h("p", {}, link(badcasesOf({ deployment_id: d.id }), "Badcases of this deployment (flagged on it)")),
      table([{ label: "Badcase", render: (b) => link(`#/badcases/${text(b.badcase_id ?? b.id)}`, text(b.badcase_id ?? b.id)) },
        { label: "Source", render: (b) => text(b.source) }, { label: "Note", render: (b) => text(b.note ?? b.reason) }], d.badcases || [], { empty: "None." }),
      operateForms.attach(d)),
    card("Metrics", table([{ label: "When", render: (m) => fmtDate(m.recorded_at ?? m.created_at) }, { label: "Values", render: (m) => text(m.values ?? m) }], list(metrics), { empty: "None." }),
      operateForms.metrics(d)),
    card("History", table([{ label: "When", render: (c) => fmtDate(c.changed_at ?? c.created_at) }, { label: "Change", render: (c) => text(c.action ?? c.status ?? c) },
      { label: "Detail", render: (c) => text(c.detail) }, { label: "By", render: (c) => text(c.actor) }], d.history || []))];
}

// Serving a live deployment: predict (viewer), flag a wrong prediction (tester: BAM files it as a badcase),
// latency per version. The input is prefilled with zeros in the shape of the served model's first input.
async function servingCard(d) {
  if (d.status !== "live" || !has("POST", "/api/msm/serve/{deployment}/predict")) return null;
  const primary = (d.versions || [])[0] || {};
  const version = primary.model_version_id ? await api("GET", `/api/msm/model-versions/${primary.model_version_id}`).catch(() => null) : null;
  const input = version && version.signature && (version.signature.inputs || [])[0];
  const zeros = (shape) => (shape.length ? Array.from({ length: typeof shape[0] === "number" ? shape[0] : 1 }, () => zeros(shape.slice(1))) : 0);
  const example = input ? { [input.name]: zeros((input.shape || []).slice(1)) } : {};
  const result = h("div", { role: "status" }); const statsBox = h("div");
  const drawStats = async () => {
    const st = await api("GET", `/api/msm/serve/${d.id}/stats`).catch(() => null);
    const rows = Object.entries((st && st.latency) || {}).map(([served, l]) => ({ served, ...l }));
    statsBox.replaceChildren(table([{ label: "Version served", key: "served" }, { label: "Requests", num: true, key: "count" },
      { label: "p50 ms", num: true, render: (l) => fmtNum(l.p50_ms) }, { label: "p90 ms", num: true, render: (l) => fmtNum(l.p90_ms) },
      { label: "p99 ms", num: true, render: (l) => fmtNum(l.p99_ms) }], rows, { empty: "No request served by this API process yet." }));
  };
  const form = h("form", { class: "stack-narrow", "aria-label": "Predict" },
    field("Inputs (JSON: input name → one sample or a batch)", h("textarea", { name: "inputs", rows: 3 }, JSON.stringify(example))),
    h("div", {}, h("button", { type: "submit" }, "Predict")));
  form.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
    let inputs;
    try { inputs = JSON.parse(String(new FormData(form).get("inputs"))); } catch { toast("Inputs must be JSON: {\"input name\": [values]}", true); return; }
    const r = await api("POST", `/api/msm/serve/${d.id}/predict`, { json: { inputs } });
    const flag = can("tester") && has("POST", "/api/msm/serve/{deployment}/feedback") ? h("form", { class: "inline", "aria-label": "Flag as wrong" },
      field("Correct label", h("input", { name: "correct_label", required: true })), h("button", { type: "submit", class: "secondary" }, "Flag as wrong")) : null;
    if (flag) flag.addEventListener("submit", (ev) => { ev.preventDefault(); act(async () => {
      const label = String(new FormData(flag).get("correct_label")).trim();
      const fb = await api("POST", `/api/msm/serve/${d.id}/feedback`, { json: { prediction_id: r.prediction_id, model_version_id: r.model_version_id,
        inputs, prediction: r.outputs, correct_label: /^-?\d+$/.test(label) ? Number(label) : label } });
      flag.replaceChildren(h("p", { class: "okc", "data-feedback": fb.id }, "Reported: BAM files it as a badcase of this deployment (",
        link(badcasesOf({ deployment_id: d.id }), "its badcases"), ")."));
    }); });
    result.replaceChildren(h("p", { "data-prediction": r.prediction_id }, `Served by ${fmt(r.model_name)} v${fmt(r.model_version)} in ${fmtNum(r.latency_ms)} ms`),
      h("pre", { "aria-label": "outputs" }, Object.entries(r.outputs || {}).map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join("\n")), flag);
    await drawStats();
  }); });
  await drawStats();
  return card("Serving", form, result, h("h3", {}, "Latency"), statsBox);
}

function statusView(d) {
  return h("div", { "data-status": text(d.status) },
    h("p", {}, badge(d.status), ` ${text(d.target)}, ${text(d.routing)}`, d.function ? [" — function ", link(badcasesOf({ function: d.function }), d.function)] : ""),
    d.failure_reason ? h("p", { class: "error" }, text(d.failure_reason)) : null,
    gateView(d));
}
