import { paramEnum, fmt, act, api, badcasesOf, can, card, chart, field, fmtDate, h, has, link, select, table, text, toast, unavailable, upload } from "/ui/lib.js";
import { datasetsTable, distributionCharts, leakageForm } from "/ui/pages/datasets.js";
import { archiveUploader } from "/ui/pages/files.js";
import { labellingCard } from "/ui/pages/labelling.js";
import { findingsCard, findingsNote } from "/ui/pages/quality.js";

function uploader() {
  const list = h("ul");
  const input = h("input", { type: "file", multiple: true, name: "files", "aria-label": "Files to upload" });
  const folder = h("input", { type: "file", multiple: true, webkitdirectory: true, name: "folder", "aria-label": "Folder to upload" });
  const go = h("button", { type: "button", onclick: () => act(async () => {
    const files = [...input.files, ...folder.files];
    if (!files.length) { toast("Choose files or a folder first", true); return; }
    for (const file of files) {
      const bar = h("progress", { max: 100, value: 0, "aria-label": `upload of ${file.name}` });
      const status = h("span", { class: "muted" }, "uploading…");
      list.append(h("li", {}, `${file.webkitRelativePath || file.name} `, bar, " ", status));
      try {
        const r = await upload("/api/dam/files", { name: file.webkitRelativePath || file.name }, file,
          (done, total) => { bar.value = Math.round((100 * done) / total); });
        bar.value = 100; status.textContent = (r.duplicate ? `already stored (${r.md5})` : `stored (${r.md5})`) + findingsNote(r.findings);
        status.className = (r.findings || []).length ? "warning" : "okc";
      } catch (err) { status.textContent = `${err.error}: ${text(err.detail)}`; status.className = "error"; }
    }
    input.value = ""; folder.value = "";
  }) }, "Upload");
  return h("div", {}, h("div", { class: "row" }, field("Files", input), field("or a folder", folder), go), list);
}

const KIND_HELP = { standard: "rows name files", table: "feature columns and a label" };
const DOC_FILES = ".csv,.tsv,.json,.jsonl,.xml,.zip,.txt";
// The format of a document file: the one chosen, else its extension when a converter has that name, else none
// (the server detects it: Label Studio and COCO JSON, a VOC or YOLO zip).
function importFormat(path, chosen, file) {
  if (chosen) return chosen;
  const ext = file.name.split(".").pop().toLowerCase();
  const known = paramEnum("POST", path, "format");
  return ext === "jsonl" ? "json" : known.includes(ext) ? ext : null;
}

function importer(onDone) {
  const form = h("form", { class: "stack", "aria-label": "Import a document" },
    field("Name *", h("input", { name: "name", required: true })), field("Description", h("input", { name: "description" })),
    field("Document file *", h("input", { name: "file", type: "file", required: true, accept: DOC_FILES })),
    field("Format", select("format", [["", "automatic"], ...paramEnum("POST", "/api/dam/documents", "format").map((f) => [f, f])], "")),
    field("Classes (YOLO, when the zip has no classes.txt): a,b,c", h("input", { name: "classes" })),
    field("Kind (automatic: a table when no md5/path column)", select("kind", [["", "automatic"], ...paramEnum("POST", "/api/dam/documents", "kind").map((k) => [k, KIND_HELP[k] ? `${k}: ${KIND_HELP[k]}` : k])], "")),
    field("Label column (a table's; default label)", h("input", { name: "label_column", maxlength: 64 })),
    h("div", {}, h("button", { type: "submit" }, "Import document")));
  form.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
    const f = new FormData(form); const file = f.get("file");
    const d = await api("POST", "/api/dam/documents", { query: { name: f.get("name"), description: f.get("description"),
      format: importFormat("/api/dam/documents", f.get("format"), file), classes: f.get("classes") || null,
      kind: f.get("kind"), label_column: f.get("label_column") },
      body: file, headers: { "Content-Type": file.type || "application/octet-stream" } });
    toast(`Imported ${fmt(d.name)}`); form.reset(); onDone();
  }); });
  return form;
}

function groupForm(docs, onDone) {
  const out = h("div", { role: "status" });
  const form = h("form", { class: "stack", "aria-label": "Group items" },
    field("Dataset name *", h("input", { name: "name", required: true })),
    field("Function (what the data is for)", h("input", { name: "function", maxlength: 100 })),
    h("fieldset", { class: "wide" }, h("legend", {}, "Documents"), docs.map((d) => h("label", { class: "check" },
      h("input", { type: "checkbox", name: "documents", value: d.id }), d.name))),
    field("Train share (1: all train, no test split)", h("input", { name: "train", type: "number", min: 0.05, max: 1, step: 0.05, value: 0.8 })),
    field("Seed", h("input", { name: "seed", type: "number", value: 0 })),
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "exclude_badcase_test_set", value: "1" }), "Leave out items of the badcase test set"),
    h("div", {}, h("button", { type: "submit" }, "Group items")));
  form.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
    const f = new FormData(form); const ids = f.getAll("documents");
    if (!ids.length) { toast("Choose at least one document", true); return; }
    const train = Number(f.get("train"));
    const body = { name: f.get("name"), documents: ids.map((id) => ({ id })),
      split: train >= 1 ? { train: 1 } : { train, test: Math.round((1 - train) * 1000) / 1000 }, seed: Number(f.get("seed")) };
    if (f.get("function")) body.function = String(f.get("function")).trim();
    if (f.get("exclude_badcase_test_set")) body.exclude_badcase_test_set = true;
    const r = await api("POST", "/api/dam/datasets", { json: body });
    out.replaceChildren(h("p", { class: "okc" }, "Grouped: ", (r.datasets || []).map((d) =>
      `${text(d.purpose)} v${text(d.version)} (${text(d.item_count ?? d.items ?? "?")} items) `)), ...groupNotes(r));
    toast("Dataset grouped"); onDone();
  }); });
  return h("div", {}, form, out);
}

// What group items answers beside the datasets: leakage into the function's badcase test set, train/test overlap,
// duplicates dropped.
function groupNotes(r) {
  const notes = [];
  const leak = r.leakage;
  if (leak && leak.count > 0) {
    notes.push(h("div", { class: "warning", role: "alert", "aria-label": "leakage" },
      h("p", {}, h("strong", {}, `Leakage: ${fmt(leak.count)} train item(s) are also in the badcase test set`),
        leak.function ? ` of function ${text(leak.function)}` : " (every function's)", "."),
      leak.warning ? h("p", {}, text(leak.warning)) : null,
      (leak.badcase_test_sets || []).length ? h("ul", {}, leak.badcase_test_sets.map((t) =>
        h("li", {}, `${text(t.name)} v${text(t.version)}: ${text(t.count)} shared`))) : null));
  } else if (leak) {
    notes.push(h("p", { class: "muted" }, `No leakage: no train item is in the badcase test set${leak.function ? ` of ${text(leak.function)}` : ""}` +
      (leak.excluded ? ` (${fmt(leak.excluded)} left out)` : "") + "."));
  }
  if (r.split_overlap && r.split_overlap.shared_count > 0) notes.push(h("p", { class: "error" }, `${fmt(r.split_overlap.shared_count)} item(s) are in both the train and the test dataset.`));
  if (r.duplicates_dropped) notes.push(h("p", { class: "muted" }, `${fmt(r.duplicates_dropped)} duplicate row(s) dropped.`));
  return notes;
}

export async function data() {
  if (!has("GET", "/api/dam/documents")) return [h("h1", {}, "Data"), unavailable("DAM")];
  const docsBox = h("div"); const dsBox = h("div"); const leakBox = h("div");
  let docs = []; let datasets = [];
  async function loadDocs() {
    docs = await api("GET", "/api/dam/documents");
    docsBox.replaceChildren(table([{ label: "Document", render: (d) => h("a", { href: `#/data/documents/${d.id}` }, d.name) },
      { label: "Kind", key: "kind" }, { label: "Function", render: (d) => text(d.function) },
      { label: "Rows", num: true, key: "row_count" }, { label: "Version", num: true, key: "current_version" },
      { label: "Description", key: "description" }, { label: "Updated", render: (d) => fmtDate(d.updated_at) }], docs, { empty: "No documents yet." }));
  }
  async function loadDatasets() {
    if (!has("GET", "/api/dam/datasets")) { dsBox.replaceChildren(unavailable("Datasets")); return; }
    const ds = await api("GET", "/api/dam/datasets");
    datasets = Array.isArray(ds) ? ds : ds.items || [];
    dsBox.replaceChildren(datasetsTable(datasets));
    leakBox.replaceChildren(leakageForm(datasets));
  }
  await Promise.all([loadDocs(), loadDatasets()]);
  const labelling = await labellingCard(docs);
  return [h("h1", {}, "Data"), h("p", {}, h("a", { href: "#/data/files" }, "Stored files, MD5 check and row search →")),
    can("tester") ? card("Upload files (MD5 dedup: a file already stored is not stored twice)", uploader(),
      has("POST", "/api/dam/files/archive") ? [h("h3", {}, "or a folder as one archive"), archiveUploader()] : null) : null,
    can("engineer") ? card("Import a document", importer(loadDocs)) : null,
    card("Documents", docsBox),
    can("engineer") && has("POST", "/api/dam/datasets") ? card("Group items into a dataset", groupForm(docs, loadDatasets)) : null,
    card("Datasets", dsBox),
    has("GET", "/api/dam/datasets/leakage") ? card("Leakage between a train and a test dataset", leakBox) : null, labelling];
}

// Download a version of the document in each format the server offers (the export route's `format` enum).
function exportCard(doc, versions) {
  const formats = paramEnum("GET", "/api/dam/documents/{document_id}/export", "format");
  const numbers = versions.map((v) => v.version).filter((v) => v !== undefined && v !== null);
  const current = doc.current_version || (numbers.length ? Math.max(...numbers) : 1);
  const links = h("p", { class: "row", "aria-label": "export links" });
  const draw = (version) => links.replaceChildren(...formats.map((f) => h("a", {
    href: `/api/dam/documents/${doc.id}/export?${new URLSearchParams({ format: f, version: String(version) })}`,
    download: "", "data-format": f }, f.toUpperCase())));  // the server names the file (its converter's extension)
  const choose = select("version", (numbers.length ? numbers : [current]).map((v) => [String(v), `v${v}`]), String(current));
  choose.setAttribute("aria-label", "version to export");
  choose.addEventListener("change", () => draw(choose.value));
  draw(current);
  return card("Export", h("div", { class: "row" }, field("Version", choose), links),
    h("p", { class: "muted" }, "CSV and TSV cells that start with =, +, -, @ get a leading quote (no spreadsheet formulas)."));
}

// A new version of the document from a file: its rows replace the current ones, or are appended to them.
function versionForm(doc) {
  const modes = paramEnum("POST", "/api/dam/documents/{document_id}/versions", "mode");
  const form = h("form", { class: "inline", "aria-label": "Import a new version" },
    field("Document file", h("input", { name: "file", type: "file", required: true, accept: DOC_FILES })),
    field("Rows", select("mode", modes.map((m) => [m, m === "append" ? "append to the current rows" : `${m} the current rows`]), modes[0])),
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "allow_new_columns", value: "1" }), "Allow new columns"),
    h("button", { type: "submit" }, "Import version"));
  form.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
    const f = new FormData(form); const file = f.get("file");
    const d = await api("POST", `/api/dam/documents/${doc.id}/versions`, { query: { mode: f.get("mode"),
      format: importFormat("/api/dam/documents/{document_id}/versions", null, file),
      allow_new_columns: f.get("allow_new_columns") ? "true" : null }, body: file, headers: { "Content-Type": file.type || "application/octet-stream" } });
    toast(`Version ${fmt(d.current_version)}: ${fmt(d.row_count)} rows`); window.dispatchEvent(new HashChangeEvent("hashchange"));
  }); });
  return form;
}

export async function documentDetail(id) {
  const doc = await api("GET", `/api/dam/documents/${id}`);
  const [rows, stats, versions] = await Promise.all([
    api("GET", `/api/dam/documents/${id}/rows`, { query: { limit: 100 } }).catch(() => null),
    api("GET", `/api/dam/documents/${id}/stats`).catch(() => null),
    api("GET", `/api/dam/documents/${id}/versions`).catch(() => null)]);
  const items = rows ? rows.items || [] : [];
  const quality = await findingsCard(doc);
  const charts = stats ? distributionCharts(stats) : [];
  const compareBox = h("div");
  const vs = versions ? (Array.isArray(versions) ? versions : versions.items || []) : [];
  const current = doc.current_version || 1;
  const cmp = h("form", { class: "inline", "aria-label": "Compare versions" },
    field("Version A", h("input", { name: "a_version", type: "number", min: 1, value: Math.max(1, current - 1) })),
    field("Version B", h("input", { name: "b_version", type: "number", min: 1, value: current })),
    h("button", { type: "submit" }, "Compare"));
  cmp.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
    const f = new FormData(cmp);
    const r = await api("GET", "/api/dam/documents/compare", { query: { a: id, b: id, a_version: f.get("a_version"), b_version: f.get("b_version") } });
    compareBox.replaceChildren(h("p", {}, `${fmt(r.added_count)} added, ${fmt(r.removed_count)} removed, ${fmt(r.changed_count)} relabelled`),
      chart("bar", r.classes.map((c) => c.label), [{ label: `v${fmt(r.a.version)}`, data: r.classes.map((c) => c.a) },
        { label: `v${fmt(r.b.version)}`, data: r.classes.map((c) => c.b) }], { label: "class counts per version" }));
  }); });
  const thumb = (r) => (r.md5 && r.media_type === "image" ? h("img", { class: "thumb", alt: text(r.path || r.md5), loading: "lazy", src: `/api/dam/files/${r.md5}/content` }) : "");
  const extras = [...new Set(items.flatMap((r) => Object.keys(r.extra || {})))].slice(0, 5);
  // A table row has features and no file; a badcase test set may mix both.
  const featureCols = [...new Set([...(doc.feature_columns || []), ...items.flatMap((r) => Object.keys(r.features || {}))])].slice(0, 12);
  const hasFiles = items.some((r) => r.md5 || r.path) || (!featureCols.length);
  const fileCols = hasFiles ? [{ label: "", render: thumb }, { label: "Path", render: (r) => text(r.path) }, { label: "MD5", render: (r) => text(r.md5) }] : [];
  const about = h("dl", { class: "kv" }, ...[["Kind", text(doc.kind)], ["Function", doc.function ? link(badcasesOf({ function: doc.function }), doc.function) : ""],
    ["Label column", text(doc.label_column)], ["Feature columns", (doc.feature_columns || []).join(", ")], ["Description", text(doc.description)]]
    .filter(([, v]) => v !== "").flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  return [h("p", {}, h("a", { href: "#/data" }, "← Data")), h("h1", {}, `Document: ${fmt(doc.name)}`), card("Document", about),
    has("GET", "/api/dam/documents/{document_id}/export") ? exportCard(doc, vs) : null, quality,
    card(`Rows (first 100 of ${rows ? rows.total : "?"})`, table([{ label: "#", key: "position", num: true }, ...fileCols, { label: "Label", key: "label" },
      ...featureCols.map((c) => ({ label: c, num: true, render: (r) => text((r.features || {})[c]) })),
      ...extras.map((c) => ({ label: c, render: (r) => text((r.extra || {})[c]) }))], items, { empty: "No rows." })),
    h("div", { class: "grid" }, charts.length ? charts : [card("Distributions", h("p", { class: "muted" }, "No distribution to draw."))]),
    h("div", { class: "spacer" }),
    card("Versions", table([{ label: "Version", key: "version" }, { label: "Rows", num: true, key: "row_count" }, { label: "By", render: (v) => text(v.created_by ?? v.user) },
      { label: "Created", render: (v) => fmtDate(v.created_at) }], vs),
    can("engineer") && has("POST", "/api/dam/documents/{document_id}/versions") ? versionForm(doc) : null, cmp, compareBox)];
}
