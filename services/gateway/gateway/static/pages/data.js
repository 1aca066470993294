import { act, api, can, card, chart, field, fmtDate, h, has, table, text, toast, unavailable, upload } from "/ui/lib.js";

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
        bar.value = 100; status.textContent = r.duplicate ? `already stored (${r.md5})` : `stored (${r.md5})`;
        status.className = "okc";
      } catch (err) { status.textContent = `${err.error}: ${text(err.detail)}`; status.className = "error"; }
    }
    input.value = ""; folder.value = "";
  }) }, "Upload");
  return h("div", {}, h("div", { class: "row" }, field("Files", input), field("or a folder", folder), go), list);
}

function importer(onDone) {
  const form = h("form", { class: "stack", "aria-label": "Import a document" },
    field("Name *", h("input", { name: "name", required: true })), field("Description", h("input", { name: "description" })),
    field("CSV, JSON or XML file *", h("input", { name: "file", type: "file", required: true, accept: ".csv,.json,.xml,.jsonl" })),
    h("div", {}, h("button", { type: "submit" }, "Import document")));
  form.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
    const f = new FormData(form); const file = f.get("file");
    const fmt = file.name.split(".").pop().toLowerCase();
    const d = await api("POST", "/api/dam/documents", { query: { name: f.get("name"), description: f.get("description"), format: fmt === "jsonl" ? "json" : fmt },
      body: file, headers: { "Content-Type": file.type || "application/octet-stream" } });
    toast(`Imported ${d.name}`); form.reset(); onDone();
  }); });
  return form;
}

export async function data() {
  if (!has("GET", "/api/dam/documents")) return [h("h1", {}, "Data"), unavailable("DAM")];
  const docsBox = h("div"); const dsBox = h("div");
  async function loadDocs() {
    const docs = await api("GET", "/api/dam/documents");
    docsBox.replaceChildren(table([{ label: "Document", render: (d) => h("a", { href: `#/data/documents/${d.id}` }, d.name) },
      { label: "Kind", key: "kind" }, { label: "Rows", num: true, key: "row_count" }, { label: "Version", num: true, key: "current_version" },
      { label: "Description", key: "description" }, { label: "Updated", render: (d) => fmtDate(d.updated_at) }], docs, { empty: "No documents yet." }));
  }
  async function loadDatasets() {
    if (!has("GET", "/api/dam/datasets")) { dsBox.replaceChildren(unavailable("Datasets")); return; }
    const ds = await api("GET", "/api/dam/datasets");
    const items = Array.isArray(ds) ? ds : ds.items || [];
    dsBox.replaceChildren(table([{ label: "Dataset", render: (d) => text(d.name) }, { label: "Version", key: "version" },
      { label: "Purpose", render: (d) => text(d.purpose ?? d.kind) }, { label: "Items", num: true, render: (d) => text(d.item_count ?? d.size ?? d.count) },
      { label: "Created", render: (d) => fmtDate(d.created_at) }], items, { empty: "No datasets yet." }));
  }
  await Promise.all([loadDocs(), loadDatasets()]);
  const labelling = has("GET", "/api/dam/labelling-tasks")
    ? card("Labelling tasks", table([{ label: "Task", render: (t) => text(t.name ?? t.id) }, { label: "Status", key: "status" }],
      await api("GET", "/api/dam/labelling-tasks").then((r) => (Array.isArray(r) ? r : r.items || [])).catch(() => [])))
    : card("Labelling tasks", unavailable("Labelling tasks"));
  return [h("h1", {}, "Data"),
    can("tester") ? card("Upload files (MD5 dedup: a file already stored is not stored twice)", uploader()) : null,
    can("engineer") ? card("Import a document", importer(loadDocs)) : null,
    card("Documents", docsBox), card("Datasets", dsBox), labelling];
}

export async function documentDetail(id) {
  const doc = await api("GET", `/api/dam/documents/${id}`);
  const [rows, stats, versions] = await Promise.all([
    api("GET", `/api/dam/documents/${id}/rows`, { query: { limit: 100 } }).catch(() => null),
    api("GET", `/api/dam/documents/${id}/stats`).catch(() => null),
    api("GET", `/api/dam/documents/${id}/versions`).catch(() => null)]);
  const items = rows ? (Array.isArray(rows) ? rows : rows.items || rows.rows || []) : [];
  const charts = [];
  if (stats) {
    for (const [name, dist] of Object.entries(stats.distributions || stats.columns || stats)) {
      const pairs = Array.isArray(dist) ? dist.map((d) => [text(d.value ?? d.key), d.count]) : (dist && typeof dist === "object" ? Object.entries(dist) : []);
      if (!pairs.length || typeof pairs[0][1] !== "number") continue;
      charts.push(card(`Distribution: ${name}`, chart("bar", pairs.map((p) => p[0]), [{ label: name, data: pairs.map((p) => p[1]) }], { label: `distribution of ${name}` })));
    }
  }
  const compareBox = h("div");
  const vs = versions ? (Array.isArray(versions) ? versions : versions.items || []) : [];
  const cmp = h("form", { class: "inline", "aria-label": "Compare versions" },
    field("Version A", h("input", { name: "a", type: "number", min: 1, value: Math.max(1, (doc.current_version || 1) - 1) })),
    field("Version B", h("input", { name: "b", type: "number", min: 1, value: doc.current_version || 1 })),
    h("button", { type: "submit" }, "Compare"));
  cmp.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
    const f = new FormData(cmp);
    const r = await api("GET", "/api/dam/documents/compare", { query: { document_id: id, a: f.get("a"), b: f.get("b") } });
    compareBox.replaceChildren(h("pre", {}, JSON.stringify(r, null, 2)));
  }); });
  const thumb = (r) => (r.md5 && /^(image)/.test(text(r.media_type)) ? h("img", { class: "thumb", alt: text(r.path || r.md5), loading: "lazy", src: `/api/dam/files/${r.md5}/content` }) : "");
  const cols = items.length ? Object.keys(items[0]).filter((k) => !["id", "extra"].includes(k)).slice(0, 8) : [];
  return [h("p", {}, h("a", { href: "#/data" }, "← Data")), h("h1", {}, `Document: ${doc.name}`),
    card("Rows (first 100)", table([{ label: "", render: thumb }, ...cols.map((c) => ({ label: c, render: (r) => text(r[c]) }))], items, { empty: "No rows." })),
    h("div", { class: "grid" }, charts.length ? charts : [card("Distributions", h("p", { class: "muted" }, "No distribution to draw."))]),
    h("div", { class: "spacer" }),
    card("Versions", table([{ label: "Version", key: "version" }, { label: "Rows", num: true, key: "row_count" }, { label: "By", render: (v) => text(v.created_by ?? v.user) },
      { label: "Created", render: (v) => fmtDate(v.created_at) }], vs), cmp, compareBox)];
}
