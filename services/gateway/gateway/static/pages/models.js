import { act, api, badge, can, card, field, fmtDate, h, has, select, table, text, toast, unavailable } from "/ui/lib.js";

const list = (r) => (Array.isArray(r) ? r : r.items || []);

export async function models() {
  if (!has("GET", "/api/msm/models")) return [h("h1", {}, "Models"), unavailable("MSM")];
  const items = list(await api("GET", "/api/msm/models"));
  return [h("h1", {}, "Models"), card("Registry", table([
    { label: "Model", render: (m) => h("a", { href: `#/models/${encodeURIComponent(m.name)}` }, m.name) },
    { label: "Function", key: "function" }, { label: "Tags", render: (m) => (m.tags || []).join(", ") },
    { label: "Description", key: "description" }, { label: "Updated", render: (m) => fmtDate(m.updated_at) }], items, { empty: "No models registered yet." }))];
}

export async function modelDetail(name) {
  const m = await api("GET", `/api/msm/models/${encodeURIComponent(name)}`);
  const history = await api("GET", `/api/msm/models/${encodeURIComponent(name)}/aliases/history`).catch(() => []);
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
      toast("Alias moved"); window.dispatchEvent(new HashChangeEvent("hashchange"));
    }); });
  }
  return [h("p", {}, h("a", { href: "#/models" }, "← Models")), h("h1", {}, `Model: ${m.name}`),
    card("Versions and lineage", table([{ label: "Version", key: "version" }, { label: "Format", key: "format" },
      { label: "Source", key: "source" }, { label: "Task", render: (v) => (v.task_id ? h("a", { href: `#/tasks/${v.task_id}` }, text(v.task_id).slice(0, 8)) : "") },
      { label: "Parent", render: (v) => text(v.parent_version_id).slice(0, 8) }, { label: "Metrics", render: (v) => text(v.metrics) },
      { label: "MD5", key: "md5" }, { label: "Id", key: "id" }], m.versions || [])),
    card("Aliases", table([{ label: "Alias", render: (a) => text(a.alias ?? a.name) }, { label: "Version", render: (a) => text(a.version ?? a.version_id) }], m.aliases || []), aliasForm),
    card("Alias history", table([{ label: "When", render: (c) => fmtDate(c.changed_at ?? c.created_at) }, { label: "Alias", key: "alias" },
      { label: "From", render: (c) => text(c.old_version ?? c.from_version) }, { label: "To", render: (c) => text(c.new_version ?? c.to_version) },
      { label: "By", render: (c) => text(c.actor ?? c.changed_by) }], list(history)))];
}

function gateView(d) {
  const g = d.gate || {};
  const verdict = g.verdict ?? g.status ?? (g.passed === true ? "passed" : g.passed === false ? "blocked" : "pending");
  const regressed = g.regressed_badcases || [];
  return h("div", {}, h("p", {}, "Gate verdict: ", badge(verdict), d.overridden ? ` — overridden by ${text(d.override_by)}: ${text(d.override_reason)}` : ""),
    g.reason ? h("p", {}, text(g.reason)) : null,
    regressed.length ? h("div", {}, h("p", { class: "error" }, `${regressed.length} previously fixed badcase(s) regressed:`),
      h("ul", {}, regressed.map((id) => h("li", {}, h("a", { href: `#/badcases/${text(id)}` }, text(id)))))) : null,
    h("details", {}, h("summary", {}, "Gate details"), h("pre", {}, JSON.stringify(g, null, 2))));
}

export async function deployments() {
  if (!has("GET", "/api/msm/deployments")) return [h("h1", {}, "Deployments"), unavailable("MSM")];
  const listBox = h("div", {}, deploymentTable(list(await api("GET", "/api/msm/deployments"))));
  let form = null; const result = h("div", { role: "status" });
  if (has("POST", "/api/msm/deployments") && can("engineer")) {
    const versions = has("GET", "/api/msm/model-versions") ? list(await api("GET", "/api/msm/model-versions").catch(() => [])) : [];
    form = h("form", { class: "stack", "aria-label": "Request a deployment" },
      field("Endpoint name *", h("input", { name: "name", required: true, pattern: "[a-z0-9][a-z0-9\\-]{0,99}" })),
      field("Model version *", select("version", versions.map((v) => [v.id, `${v.name} v${v.version}`]))),
      field("Function", h("input", { name: "function" })), field("Target", select("target", ["local", "docker", "edge"], "local")),
      can("maintainer") ? field("Override reason (maintainers)", h("input", { name: "override_reason" })) : null,
      h("div", {}, h("button", { type: "submit", disabled: !versions.length }, "Request deployment")));
    form.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
      const f = new FormData(form);
      const body = { name: f.get("name"), target: f.get("target"), versions: [{ model_version_id: f.get("version") }] };
      if (f.get("function")) body.function = f.get("function");
      if (f.get("override_reason")) body.override_reason = f.get("override_reason");
      try {
        const d = await api("POST", "/api/msm/deployments", { json: body });
        result.replaceChildren(h("p", { class: "okc" }, `Deployment ${d.name} requested: `, badge(d.status)), gateView(d),
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
  return table([{ label: "Name", render: (d) => h("a", { href: `#/deployments/${d.id}` }, d.name) },
    { label: "Status", render: (d) => badge(d.status) }, { label: "Target", key: "target" }, { label: "Routing", key: "routing" },
    { label: "Gate", render: (d) => badge(d.gate && (d.gate.verdict ?? d.gate.status ?? (d.gate.passed ? "passed" : "blocked"))) },
    { label: "Created", render: (d) => fmtDate(d.created_at) }], items, { empty: "No deployments yet." });
}

// The gate's refusal: its reasons, the regressed badcases, and (maintainers) an override with a reason.
function blockedView(detail) {
  const box = h("div", {}, h("p", { class: "error" }, "Blocked by the gate: ", text(detail.message)),
    h("ul", { "aria-label": "reasons" }, (detail.reasons || []).map((r) => h("li", {}, text(r)))),
    (detail.regressed_badcases || []).length ? h("p", {}, "Regressed badcases: ",
      detail.regressed_badcases.map((id) => h("a", { href: `#/badcases/${text(id)}` }, `${text(id)} `))) : null);
  if (detail.deployment_id) box.append(h("p", {}, h("a", { href: `#/deployments/${detail.deployment_id}` }, "Open the blocked deployment")));
  if (detail.deployment_id && can("maintainer")) {
    const f = h("form", { class: "inline", "aria-label": "Override the gate" },
      field("Reason for the override", h("input", { name: "reason", required: true, minlength: 3 })), h("button", { type: "submit", class: "danger" }, "Override the gate"));
    f.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
      const d = await api("POST", `/api/msm/deployments/${detail.deployment_id}/override`, { json: { reason: new FormData(f).get("reason") } });
      box.replaceChildren(h("p", { class: "okc" }, `Overridden: ${d.name} is `, badge(d.status)), gateView(d),
        h("p", {}, h("a", { href: `#/deployments/${d.id}` }, "Open it")));
    }); });
    box.append(f);
  }
  return box;
}

export async function deploymentDetail(id) {
  const d = await api("GET", `/api/msm/deployments/${id}`);
  const metrics = await api("GET", `/api/msm/deployments/${id}/metrics`).catch(() => []);
  const rollback = can("maintainer") ? h("button", { type: "button", class: "danger", onclick: () => act(async () => {
    await api("POST", `/api/msm/deployments/${id}/rollback`, { json: { reason: "rolled back from the web UI" } });
    toast("Rolled back"); window.dispatchEvent(new HashChangeEvent("hashchange"));
  }) }, "Roll back") : null;
  return [h("p", {}, h("a", { href: "#/deployments" }, "← Deployments")), h("h1", {}, `Deployment: ${d.name}`),
    card("Status", h("p", {}, badge(d.status), ` ${d.target}, ${d.routing}`), gateView(d), rollback),
    card("Versions", table([{ label: "Version id", render: (v) => text(v.model_version_id ?? v.id) }, { label: "Role", key: "role" }, { label: "Weight", key: "weight" }], d.versions || [])),
    card("Attached badcases", table([{ label: "Badcase", render: (b) => h("a", { href: `#/badcases/${text(b.badcase_id ?? b.id)}` }, text(b.badcase_id ?? b.id)) },
      { label: "Note", render: (b) => text(b.note ?? b.reason) }], d.badcases || [], { empty: "None." })),
    card("Metrics", table([{ label: "When", render: (m) => fmtDate(m.recorded_at ?? m.created_at) }, { label: "Values", render: (m) => text(m.values ?? m) }], list(metrics), { empty: "None." })),
    card("History", table([{ label: "When", render: (c) => fmtDate(c.changed_at ?? c.created_at) }, { label: "Change", render: (c) => text(c.action ?? c.status ?? c) },
      { label: "By", render: (c) => text(c.actor) }], d.history || []))];
}
