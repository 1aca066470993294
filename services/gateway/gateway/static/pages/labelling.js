// Labelling tasks (DAM): create one over a document, follow its items, annotate them here (any labelling system
// may post annotations; this page is one), and pull what its labelling tool (Label Studio or a labelling plugin) holds
// now (reconcile).
import { act, api, badge, can, card, errorText, field, fmt, fmtDate, h, has, link, schemaEnum, select, short, table, text, toast, unavailable } from "/ui/lib.js";

const rerender = () => window.dispatchEvent(new HashChangeEvent("hashchange"));

// The labelling tools (DAM's active labelling plugins) a task can be pushed to.
async function connectors() {
  if (!has("GET", "/api/dam/plugins")) return [];
  const r = await api("GET", "/api/dam/plugins").catch(() => ({ plugins: [] }));
  return r.plugins.filter((p) => p.seam === "labelling" && p.state === "active").map((p) => p.name);
}

function createForm(docs, tools) {
  const form = h("form", { class: "inline", "aria-label": "Create a labelling task" },
    field("Document", select("document_id", docs.map((d) => [d.id, d.name]))),
    field("Labels (comma separated)", h("input", { name: "labels", required: true })),
    field("Kind", select("kind", schemaEnum("LabellingTaskCreate", "kind"), "classification")),
    field("Labelling tool", select("connector", [["", "default (Label Studio when configured)"], ["-", "none: annotate here"],
      ...tools.map((n) => [n, n])], "")),
    h("button", { type: "submit" }, "Create labelling task"));
  form.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
    const f = new FormData(form); const tool = f.get("connector");
    const t = await api("POST", "/api/dam/labelling-tasks", { json: { document_id: f.get("document_id"), kind: f.get("kind"),
      labels: String(f.get("labels")).split(",").map((x) => x.trim()).filter(Boolean),
      ...(tool === "-" ? { label_studio: false } : tool ? { connector: tool } : {}) } });
    toast("Labelling task created"); location.hash = `#/data/labelling/${t.id}`;
  }); });
  return form;
}

export async function labellingCard(docs) {
  if (!has("GET", "/api/dam/labelling-tasks")) return card("Labelling tasks", unavailable("Labelling tasks"));
  const tasks = await api("GET", "/api/dam/labelling-tasks").then((r) => (Array.isArray(r) ? r : r.items || [])).catch(() => []);
  return card("Labelling tasks", can("engineer") ? createForm(docs, await connectors()) : null, table([
    { label: "Task", render: (t) => link(`#/data/labelling/${t.id}`, t.title ?? t.name ?? short(t.id)) },
    { label: "Kind", key: "kind" }, { label: "Status", render: (t) => badge(t.status) },
    { label: "Annotated", num: true, render: (t) => `${fmt(t.annotated_count)} / ${fmt(t.item_count)}` },
    { label: "Created", render: (t) => fmtDate(t.created_at) }], tasks, { empty: "No labelling tasks." }));
}

const itemColumns = (annotation) => [{ label: "#", num: true, key: "position" },
  { label: "File", render: (i) => (i.md5 ? link(`#/data/files/${i.md5}`, short(i.md5)) : "") },
  { label: "Pre-label", render: (i) => text(i.prelabel) }, { label: "Annotation", render: annotation },
  { label: "Annotated", render: (i) => fmtDate(i.annotated_at) }];

// One control per item: a label to choose (classification) or a JSON value (detection boxes).
function annotationInput(t, item) {
  const current = item.annotation ?? item.prelabel;
  if (t.kind === "classification" && (t.labels || []).length) {
    const s = select(`a-${item.item_id}`, [["", "(not annotated)"], ...t.labels.map((l) => [l, l])], typeof current === "string" ? current : "");
    s.setAttribute("aria-label", `label of item ${item.position}`);
    return s;
  }
  return h("input", { name: `a-${item.item_id}`, "aria-label": `annotation of item ${item.position}`,
    value: current === undefined || current === null ? "" : JSON.stringify(current), placeholder: '[{"label": "…", "x": 0, "y": 0, "w": 1, "h": 1}]' });
}

function annotateForm(t, items) {
  const out = h("div", { role: "status" });
  const form = h("form", { class: "stack-wide", "aria-label": "Annotate items" },
    table(itemColumns((i) => annotationInput(t, i)), items, { empty: "No items." }),
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "complete", value: "1" }), "Complete the task now (even if some items are not annotated)"),
    h("div", {}, h("button", { type: "submit" }, "Save annotations")), out);
  form.addEventListener("submit", (e) => { e.preventDefault();
    const f = new FormData(form); const annotations = [];
    for (const i of items) {
      const raw = String(f.get(`a-${i.item_id}`) ?? "").trim();
      if (!raw) continue;
      let value = raw;
      if (t.kind !== "classification") {
        try { value = JSON.parse(raw); } catch { out.replaceChildren(h("p", { class: "error", role: "alert" }, `item ${i.position}: the annotation must be JSON`)); return; }
      }
      annotations.push({ item_id: i.item_id, annotation: value });
    }
    api("POST", `/api/dam/labelling-tasks/${t.id}/annotations`, { json: { annotations, complete: f.get("complete") === "1" } })
      .then((r) => { toast(`Saved: ${fmt(r.annotated_count)} of ${fmt(r.item_count)} annotated`); rerender(); })
      .catch((err) => out.replaceChildren(h("p", { class: "error", role: "alert" }, errorText(err))));
  });
  return form;
}

export async function labellingDetail(id) {
  const t = await api("GET", `/api/dam/labelling-tasks/${id}`);
  const items = await api("GET", `/api/dam/labelling-tasks/${id}/items`).catch(() => []);
  const about = h("dl", { class: "kv" }, ...[["Status", badge(t.status)], ["Kind", text(t.kind)], ["Labels", (t.labels || []).join(", ")],
    ["Document", link(`#/data/documents/${t.document_id}`, `${short(t.document_id)} v${fmt(t.document_version)}`)],
    ["Progress", h("span", { "data-annotated": String(t.annotated_count) }, `${fmt(t.annotated_count)} of ${fmt(t.item_count)} annotated`)],
    ["Pre-labels from", text(t.prelabel_source)], ["Labelling tool", text(t.connector)], ["Project in the tool", text(t.external_project)],
    ["Completed", t.completed_at ? `${fmtDate(t.completed_at)} (document v${fmt(t.completed_version)})` : ""], ["Created", fmtDate(t.created_at)]]
    .filter(([, v]) => v !== "").flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  const tool = t.connector && t.connector !== "labelstudio" ? t.connector : "Label Studio";
  const reconcile = can("engineer") && t.status === "open" ? h("button", { type: "button", class: "secondary", onclick: () => act(async () => {
    const r = await api("POST", `/api/dam/labelling-tasks/${id}/reconcile`);
    toast(r.external_project ? `Pulled from ${tool}: ${fmt(r.annotated_count)} of ${fmt(r.item_count)} annotated` : `Not in ${tool}: nothing to pull`);
    rerender();
  }) }, `Pull annotations from ${tool}`) : null;
  return [h("p", {}, h("a", { href: "#/data" }, "← Data")), h("h1", {}, `Labelling task ${short(t.id)}`),
    card("Task", about, reconcile ? h("p", {}, reconcile) : null),
    card("Items", can("tester") && t.status === "open" ? annotateForm(t, items)
      : table(itemColumns((i) => text(i.annotation)), items, { empty: "No items." }))];
}
