import { schemaEnum, paramEnum, fmt, act, api, badcasesOf, badge, can, card, chart, countBy, field, fmtDate, fmtNum, h, has, link, select, short, table, text, toast, unavailable } from "/ui/lib.js";
import { outcomeText, previewOf, previewView, segmentText, thumbnail } from "/ui/preview.js";

// Choices come from the server's OpenAPI (a value added to an enum there shows up here); "" is "any".
const anyOf = (param) => ["", ...paramEnum("GET", "/api/bam/badcases", param)];
const ATTRS = () => schemaEnum("BadcaseStats", "group_by").filter((a) => a !== "week");
const filters = { q: "", function: "", status: "", severity: "", source: "", model_version: "" };
// Filters by id come from links ("badcases of this task / deployment / model version"): `#/badcases?task_id=…`.
const ID_FILTERS = [["task_id", "Task", (v) => `#/tasks/${v}`], ["deployment_id", "Deployment", (v) => `#/deployments/${v}`],
  ["model_version_id", "Model version", null]];
const idFilters = { task_id: "", deployment_id: "", model_version_id: "" };

function thumb(b) {
  if (b.features && Object.keys(b.features).length && !b.data_md5) {
    const cells = Object.entries(b.features);
    return h("span", { class: "features muted", title: cells.map(([k, v]) => `${k}=${text(v)}`).join(", ") },
      cells.slice(0, 3).map(([k, v]) => `${k}=${text(v)}`).join(", ") + (cells.length > 3 ? ", …" : ""));
  }
  return thumbnail(b);
}

function reportForm(onDone) {
  const out = h("p", { role: "status" });
  const form = h("form", { class: "stack", "aria-label": "Report a badcase" },
    field("Function *", h("input", { name: "function", required: true, maxlength: 200 })),
    field("Model name", h("input", { name: "model_name" })), field("Model version", h("input", { name: "model_version" })),
    field("Prediction", h("input", { name: "prediction" })), field("Ground truth", h("input", { name: "ground_truth" })),
    field("Severity", select("severity", schemaEnum("BadcaseCreate", "severity"), "medium")),
    field("Tags (comma separated)", h("input", { name: "tags" })),
    field("Data file", h("input", { name: "file", type: "file" })),
    field("Segment start (s, audio/video)", h("input", { name: "segment_start", type: "number", min: 0, step: "any" })),
    field("Segment end (s)", h("input", { name: "segment_end", type: "number", min: 0, step: "any" })),
    field("Features (a tabular badcase: JSON object)", h("input", { name: "features", placeholder: '{"alcohol": 13.2, "ash": 2.4}' })),
    field("Description", h("textarea", { name: "description" })),
    h("div", {}, h("button", { type: "submit" }, "Report badcase")), out);
  form.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
    const f = new FormData(form);
    const report = { function: f.get("function"), description: f.get("description") || "", severity: f.get("severity") };
    for (const k of ["model_name", "model_version", "prediction", "ground_truth"]) if (f.get(k)) report[k] = f.get(k);
    for (const k of ["segment_start", "segment_end"]) if (f.get(k) !== "" && f.get(k) !== null) report[k] = Number(f.get(k));
    if (f.get("features")) {
      let features;
      try { features = JSON.parse(String(f.get("features"))); } catch { features = null; }
      if (!features || typeof features !== "object" || Array.isArray(features)) { toast("Features must be a JSON object: {\"column\": value}", true); return; }
      report.features = features;
    }
    const tags = String(f.get("tags") || "").split(",").map((t) => t.trim()).filter(Boolean);
    if (tags.length) report.tags = tags;
    const file = f.get("file");
    let b;
    if (file && file.size) {
      const body = new FormData(); body.append("report", JSON.stringify(report)); body.append("file", file, file.name);
      b = await api("POST", "/api/bam/badcases/with-data", { body });
    } else b = await api("POST", "/api/bam/badcases", { json: report });
    out.replaceChildren(b.merged_into ? `Merged into an existing badcase (seen ${fmt(b.frequency)} times). ` : "Recorded. ",
      h("a", { href: `#/badcases/${b.id}` }, "Open it"));
    form.reset(); toast(b.merged_into ? "Merged into an existing badcase" : "Badcase recorded"); onDone();
  }); });
  return form;
}

// Bulk import (testers): a CSV or JSON-lines file; valid rows are recorded (deduplicated), invalid ones listed.
function importForm(onDone) {
  const out = h("div", { role: "status" });
  const formats = paramEnum("POST", "/api/bam/badcases/import", "format");
  const form = h("form", { class: "inline", "aria-label": "Import badcases" },
    field(`File (${formats.join(" or ")})`, h("input", { name: "file", type: "file", required: true, accept: formats.map((f) => `.${f}`).join(",") })),
    h("button", { type: "submit" }, "Import"));
  form.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
    const file = new FormData(form).get("file");
    const ext = file.name.split(".").pop().toLowerCase();
    const format = formats.includes(ext) ? ext : (ext === "json" || ext === "ndjson" ? "jsonl" : "csv");
    const r = await api("POST", "/api/bam/badcases/import", { query: { format }, body: file,
      headers: { "Content-Type": format === "csv" ? "text/csv" : "application/x-ndjson" } });
    out.replaceChildren(h("p", { class: r.failed ? "error" : "okc", "data-imported": String(r.rows) },
      `${fmt(r.rows)} row(s): ${fmt(r.created)} new, ${fmt(r.merged)} merged, ${fmt(r.failed)} failed`),
    (r.errors || []).length ? table([{ label: "Row", num: true, key: "row" }, { label: "Error", render: (x) => fmt(x.error ?? x.message ?? x.detail) }],
      r.errors.slice(0, 50)) : null, r.errors_not_shown ? h("p", { class: "muted" }, `… and ${fmt(r.errors_not_shown)} more`) : null);
    form.reset(); onDone();
  }); });
  return h("div", {}, form, out);
}

// How a function's audio/video badcases with a segment become test data (DAM's setting, a maintainer's to change).
async function conversion(box, fn) {
  if (!fn || !has("GET", "/api/dam/test-data-conversions/{function}")) { box.replaceChildren(); return; }
  const c = await api("GET", `/api/dam/test-data-conversions/${encodeURIComponent(fn)}`).catch(() => null);
  if (!c) { box.replaceChildren(card(`Conversion to test data: ${fn}`, unavailable("DAM"))); return; }
  const video = c.video.mode === "frames" ? `PNG frames at ${fmt(c.video.fps)} per second` : "a WebM clip of the segment";
  const audio = c.audio.sample_rate ? `a WAV clip at ${fmt(c.audio.sample_rate)} Hz` : "a WAV clip at the recording's own rate";
  const summary = h("p", { "data-conversion": `${c.video.mode} ${fmt(c.video.fps)} ${fmt(c.audio.sample_rate)}` },
    `Added to test data, a video segment becomes ${video}; an audio segment ${audio}`,
    c.is_default ? " (the defaults)." : ` (set by ${text(c.updated_by)}, ${fmtDate(c.updated_at)}).`);
  let form = null;
  if (can("maintainer") && has("PUT", "/api/dam/test-data-conversions/{function}")) {
    form = h("form", { class: "inline", "aria-label": "Test data conversion" },
      field("Video", select("mode", [["frames", "frames"], ["clip", "clip (WebM)"]], c.video.mode)),
      field("Frames per second", h("input", { name: "fps", type: "number", min: 0.1, max: 30, step: "any", value: c.video.fps })),
      field("Audio rate (Hz; empty: the recording's)", h("input", { name: "sample_rate", type: "number", min: 1000, max: 384000, step: 1,
        value: c.audio.sample_rate ?? "" })),
      h("button", { type: "submit" }, "Save conversion"));
    form.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
      const f = new FormData(form);
      await api("PUT", `/api/dam/test-data-conversions/${encodeURIComponent(fn)}`, { json: {
        video: { mode: f.get("mode"), fps: Number(f.get("fps")) },
        audio: { sample_rate: f.get("sample_rate") ? Number(f.get("sample_rate")) : null } } });
      toast("Conversion saved"); await conversion(box, fn);
    }); });
  }
  box.replaceChildren(card(`Conversion to test data: ${fn}`, summary, form));
}

export async function badcases(queryString) {
  if (!has("GET", "/api/bam/badcases")) return [h("h1", {}, "Badcases"), unavailable("BAM")];
  // A link with a query (`#/badcases?function=…&task_id=…`) sets the filters it names and clears the others.
  const query = new URLSearchParams(queryString || "");
  for (const k of Object.keys(idFilters)) idFilters[k] = query.get(k) || "";
  if (queryString) for (const k of Object.keys(filters)) filters[k] = query.get(k) || "";
  const functions = await api("GET", "/api/bam/stats", { query: { group_by: "function", limit: 200 } })
    .then((s) => s.groups.map((g) => text(g.key.function)).filter(Boolean)).catch(() => []);
  const selected = new Set();
  let rows = []; let next = null;
  const listBox = h("div"); const selStats = h("div", { class: "grid" }); const groupBox = h("div");
  const conversionBox = h("div");
  const moreBtn = h("button", { type: "button", class: "secondary", hidden: true, onclick: () => load(true) }, "Load more");
  const selInfo = h("span", { class: "muted" }, "0 selected");

  const form = h("form", { class: "inline", role: "search", "aria-label": "Filter badcases" },
    field("Search", h("input", { name: "q", type: "search", value: filters.q, placeholder: "description, tags" })),
    field("Function", h("input", { name: "function", value: filters.function, list: "known-functions", autocomplete: "off" })),
    h("datalist", { id: "known-functions" }, functions.map((f) => h("option", { value: f }))),
    field("Status", select("status", anyOf("status"), filters.status)), field("Severity", select("severity", anyOf("severity"), filters.severity)),
    field("Source", select("source", anyOf("source"), filters.source)), field("Model version", h("input", { name: "model_version", value: filters.model_version })),
    h("button", { type: "submit" }, "Filter"));
  form.addEventListener("submit", (e) => { e.preventDefault(); for (const k of Object.keys(filters)) filters[k] = new FormData(form).get(k) || ""; load(false); });
  const idBox = h("p", { class: "row", "aria-label": "Filters from links" });
  function renderIdFilters() {
    idBox.replaceChildren(...ID_FILTERS.filter(([k]) => idFilters[k]).map(([k, label, href]) => h("span", { class: "chip" },
      `${label}: `, href ? link(href(idFilters[k]), short(idFilters[k])) : short(idFilters[k]), " ",
      h("button", { type: "button", class: "secondary small", "aria-label": `clear the ${label.toLowerCase()} filter`,
        onclick: () => { idFilters[k] = ""; renderIdFilters(); load(false); } }, "✕"))));
    idBox.hidden = !idBox.childElementCount;
  }
  renderIdFilters();
  const allFilters = () => ({ ...filters, ...idFilters });

  function renderSelectionStats() {
    selInfo.textContent = `${selected.size} selected`;
    const chosen = rows.filter((r) => selected.has(r.id));
    const base = chosen.length ? chosen : rows;
    const title = chosen.length ? `selected (${chosen.length})` : `listed (${rows.length})`;
    selStats.replaceChildren(...["function", "status", "severity", "model_version"].map((attr) => {
      const counts = countBy(base, attr);
      return card(`By ${attr} — ${title}`, chart(attr === "status" ? "doughnut" : "bar", counts.map((c) => c[0]),
        [{ label: "badcases", data: counts.map((c) => c[1]) }], { label: `badcases by ${attr}` }));
    }));
  }

  async function load(more) {
    await act(async () => {
      const page = await api("GET", "/api/bam/badcases", { query: { ...allFilters(), limit: 50, cursor: more ? next : null } });
      rows = more ? rows.concat(page.items) : page.items; next = page.next_cursor;
      if (!more) selected.clear();
      moreBtn.hidden = !next;
      listBox.replaceChildren(table([
        { label: "", render: (b) => h("input", { type: "checkbox", "aria-label": `select ${b.function} ${b.id}`, checked: selected.has(b.id),
          onchange: (e) => { if (e.target.checked) selected.add(b.id); else selected.delete(b.id); renderSelectionStats(); } }) },
        { label: "Preview", render: thumb },
        { label: "Function", render: (b) => h("a", { href: `#/badcases/${b.id}` }, text(b.function)) },
        { label: "Description", render: (b) => text(b.description).slice(0, 120) },
        { label: "Prediction / truth", render: (b) => (text(b.prediction) || text(b.ground_truth) ? `${outcomeText(b.prediction)} / ${outcomeText(b.ground_truth)}` : "") },
        { label: "Model", render: (b) => [text(b.model_name), text(b.model_version)].filter(Boolean).join(" ") },
        { label: "Status", render: (b) => badge(b.status) }, { label: "Severity", key: "severity" },
        { label: "Priority", num: true, render: (b) => fmtNum(b.priority) }, { label: "Seen", num: true, key: "frequency" },
        { label: "Last seen", render: (b) => fmtDate(b.last_seen) }], rows, { empty: "No badcase matches." }));
      renderSelectionStats();
      if (!more) await conversion(conversionBox, filters.function.trim());
    });
  }

  const groupSel = select("group_by", ATTRS(), "function");
  const pairSel = select("pair", [["", "(none)"], ...ATTRS().map((a) => [a, a])], "");
  async function grouped() {
    await act(async () => {
      const group_by = pairSel.value ? `${groupSel.value},${pairSel.value}` : groupSel.value;
      const s = await api("GET", "/api/bam/stats", { query: { ...allFilters(), group_by, limit: 30 } });
      if (!s.matrix) {
        groupBox.replaceChildren(chart("bar", s.groups.map((g) => text(g.key[groupSel.value]) || "(none)"),
          [{ label: `badcases (of ${s.total})`, data: s.groups.map((g) => g.count) }], { label: "grouped statistics" }));
      } else {
        groupBox.replaceChildren(chart("bar", s.matrix.rows.map((r) => text(r) || "(none)"),
          s.matrix.columns.map((c, j) => ({ label: text(c) || "(none)", data: s.matrix.rows.map((_, i) => s.matrix.counts[i][j]) })),
          { stacked: true, label: "confusion table" }));
      }
    });
  }

  const addBtn = h("button", { type: "button", class: "secondary", onclick: () => act(async () => {
    if (!selected.size) { toast("Select badcases first", true); return; }
    const r = await api("POST", "/api/bam/badcases/add-to-test-data", { json: { ids: [...selected] } });
    toast(`Added to test data: ${fmt(r.added)}`); load(false);
  }) }, "Add selected to test data");

  await load(false);
  await grouped();
  return [h("h1", {}, "Badcases"),
    can("tester") ? card("Report a badcase", reportForm(() => load(false))) : null,
    can("tester") && has("POST", "/api/bam/badcases/import") ? card("Import badcases (CSV or JSON lines)", importForm(() => load(false))) : null,
    card("Find badcases", form, idBox),
    card("Badcases", h("div", { class: "row" }, selInfo, can("tester") ? addBtn : null), listBox, moreBtn), conversionBox,
    h("h2", {}, "Statistics of the selection (all listed when none is selected)"), selStats, h("div", { class: "spacer" }),
    card("Grouped statistics over the filter", h("div", { class: "row" }, field("Group by", groupSel), field("and by", pairSel),
      h("button", { type: "button", onclick: grouped }, "Draw")), groupBox)];
}

// The original data where it is kept: BAM's copy, or the DAM file the badcase names (with its page).
function original(b) {
  const p = previewOf(b);
  if (p.source === "dam" && p.md5) {
    return h("p", {}, h("a", { href: `/api/dam/files/${p.md5}/content`, download: "" }, "Download the original data"), " — ",
      link(`#/data/files/${p.md5}`, "the file in DAM"));
  }
  return b.data_md5 && has("GET", "/api/bam/badcases/{badcase_id}/data")
    ? h("p", {}, h("a", { href: `/api/bam/badcases/${b.id}/data`, download: "" }, "Download the original data")) : null;
}

export async function badcaseDetail(id) {
  const b = await api("GET", `/api/bam/badcases/${id}`);
  const [occ, outcomes, history] = await Promise.all([
    api("GET", `/api/bam/badcases/${id}/occurrences`).catch(() => null),
    api("GET", `/api/bam/badcases/${id}/outcomes`).catch(() => null),
    api("GET", `/api/bam/badcases/${id}/history`).catch(() => null)]);
  const preview = await previewView(b);
  // A registry name only when MSM's version is known (a manual report's model name is free text).
  const modelHref = b.model_name && (b.model_version_id || ["testing", "serving"].includes(b.source)) ? `#/models/${encodeURIComponent(b.model_name)}` : null;
  const model = [text(b.model_name), text(b.model_version) && `v${text(b.model_version).replace(/^v/, "")}`].filter(Boolean).join(" ");
  const kv = h("dl", { class: "kv" }, ...[
    ["Function", h("span", {}, link(badcasesOf({ function: b.function }), b.function), " ",
      h("span", { class: "muted" }, "(all its badcases)"))],
    ["Status", badge(b.status)], ["Severity", text(b.severity)], ["Priority", fmtNum(b.priority)],
    ["Model", modelHref ? link(modelHref, model) : model],
    ["Model version", b.model_version_id ? h("span", { "data-field": "model_version_id" }, modelHref ? link(modelHref, short(b.model_version_id)) : short(b.model_version_id),
      " — ", link(badcasesOf({ model_version_id: b.model_version_id }), "badcases found on it")) : ""],
    ["Task", b.task_id ? h("span", { "data-field": "task_id" }, link(`#/tasks/${b.task_id}`, `task ${short(b.task_id)}`), " — ",
      link(badcasesOf({ task_id: b.task_id }), "badcases of this task")) : ""],
    ["Deployment", b.deployment_id ? h("span", { "data-field": "deployment_id" }, link(`#/deployments/${b.deployment_id}`, `deployment ${short(b.deployment_id)}`), " — ",
      link(badcasesOf({ deployment_id: b.deployment_id }), "badcases of this deployment")) : ""],
    ["System version", text(b.system_version)], ["Source", text(b.source)],
    ["Reporter", text(b.reporter)], ["Owner", text(b.owner)], ["Prediction", text(b.prediction)], ["Ground truth", text(b.ground_truth)],
    ["Segment", segmentText(b)], ["Tags", (b.tags || []).join(", ")], ["Seen", `${fmt(b.frequency)} times, first ${fmtDate(b.first_seen)}, last ${fmtDate(b.last_seen)}`],
    ["Added to test data", fmtDate(b.added_to_test_data_at) || "no"], ["Description", text(b.description)]]
    .flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  const features = b.features && Object.keys(b.features).length
    ? card("Feature row", h("table", { "aria-label": "features" }, h("thead", {}, h("tr", {}, Object.keys(b.features).map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, h("tr", {}, Object.values(b.features).map((v) => h("td", { class: typeof v === "number" ? "num" : null }, text(v)))))))
    : null;

  const triage = h("form", { class: "stack", "aria-label": "Triage" },
    field("Status", select("status", schemaEnum("BadcaseUpdate", "status"), b.status)), field("Severity", select("severity", schemaEnum("BadcaseUpdate", "severity"), b.severity)),
    field("Owner", h("input", { name: "owner", value: b.owner || "" })),
    field("Manual priority", h("input", { name: "priority", type: "number", min: 0, step: "any", value: b.priority_is_manual ? b.priority : "" })),
    h("div", {}, h("button", { type: "submit" }, "Save triage")));
  triage.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
    const f = new FormData(triage); const body = { status: f.get("status"), severity: f.get("severity") };
    if (f.get("owner")) body.owner = f.get("owner");
    if (f.get("priority") !== "") body.priority = Number(f.get("priority"));
    await api("PATCH", `/api/bam/badcases/${id}`, { json: body }); toast("Triage saved"); location.hash = `#/badcases/${id}`;
    window.dispatchEvent(new HashChangeEvent("hashchange"));
  }); });
  const addBtn = h("button", { type: "button", onclick: () => act(async () => {
    await api("POST", "/api/bam/badcases/add-to-test-data", { json: { ids: [id] } }); toast("Added to test data");
    window.dispatchEvent(new HashChangeEvent("hashchange"));
  }) }, "Add to test data");

  return [h("p", {}, h("a", { href: "#/badcases" }, "← Badcases")), h("h1", {}, `Badcase: ${b.function}`),
    h("div", { class: "grid" }, card("Details", kv), card("Preview", preview, original(b))), h("div", { class: "spacer" }), features,
    can("tester") ? card("Triage", triage, h("p", {}, addBtn)) : null,
    card("Outcome per model version (the status follows production)", outcomes ? table([{ label: "Model", render: (o) => link(`#/models/${encodeURIComponent(o.model_name)}`, o.model_name) },
      { label: "Version", render: (o) => [text(o.model_version), o.production ? " " : null, o.production ? badge("production") : null] },
      { label: "Latest", render: (o) => badge(o.passed ? "passed" : "failed") }, { label: "Tests", num: true, key: "tests" },
      { label: "Last tested", render: (o) => fmtDate(o.last_tested_at) }], outcomes.by_model_version, { empty: "Not tested yet." }) : unavailable("Outcomes")),
    card("Occurrences", occ ? table([{ label: "When", render: (o) => fmtDate(o.reported_at) }, { label: "Source", key: "source" },
      { label: "Reporter", key: "reporter" }, { label: "Model", render: (o) => [text(o.model_name), text(o.model_version)].filter(Boolean).join(" ") },
      { label: "Deployment", render: (o) => (o.deployment_id ? link(`#/deployments/${o.deployment_id}`, short(o.deployment_id)) : "") },
      { label: "Task", render: (o) => (o.task_id ? link(`#/tasks/${o.task_id}`, short(o.task_id)) : "") },
      { label: "Segment", render: (o) => segmentText(o) }, { label: "Prediction", render: (o) => outcomeText(o.prediction) },
      { label: "Description", key: "description" }], occ) : unavailable("Occurrences")),
    card("Triage history", history ? table([{ label: "When", render: (c) => fmtDate(c.changed_at || c.created_at) }, { label: "Who", key: "actor" },
      { label: "Field", key: "field" }, { label: "From", render: (c) => text(c.old) }, { label: "To", render: (c) => text(c.new) }], history, { empty: "No triage yet." }) : unavailable("History"))];
}
