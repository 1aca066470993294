// Stored files (DAM keeps each once, by MD5): the list with its filters, one file's metadata and content, which
// MD5s are already stored, an archive of a folder uploaded in one go, and search across the documents' rows.
import { act, api, can, card, field, fmt, fmtDate, h, has, link, short, table, text, toast, unavailable, upload } from "/ui/lib.js";
import { findingsList, findingsNote } from "/ui/pages/quality.js";

const fileLink = (md5) => link(`#/data/files/${md5}`, md5);

function filesTable(rows) {
  return table([{ label: "MD5", render: (f) => fileLink(f.md5) }, { label: "Name", render: (f) => text(f.name) },
    { label: "Type", key: "media_type" }, { label: "Size", num: true, key: "size" },
    { label: "Dimensions", render: (f) => (f.width ? `${fmt(f.width)}×${fmt(f.height)}` : "") },
    { label: "Stored", render: (f) => fmtDate(f.created_at) }], rows, { empty: "No file matches." });
}

// "Which of these are stored?": a client (or a person with a list of checksums) skips uploading those.
function checkForm() {
  const out = h("div", { role: "status" });
  const form = h("form", { class: "stack-narrow", "aria-label": "Check MD5s" },
    field("MD5s (one per line or comma separated)", h("textarea", { name: "md5s", rows: 3, required: true })),
    h("div", {}, h("button", { type: "submit" }, "Check")));
  form.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
    const md5s = String(new FormData(form).get("md5s")).split(/[\s,]+/).map((x) => x.trim().toLowerCase()).filter(Boolean);
    const r = await api("POST", "/api/dam/files/check", { json: { md5s } });
    out.replaceChildren(h("p", { "data-existing": String(r.existing.length), "data-missing": String(r.missing.length) },
      `${r.existing.length} stored, ${r.missing.length} missing`),
    h("ul", {}, r.existing.map((m) => h("li", {}, fileLink(m), " stored")), r.missing.map((m) => h("li", { class: "muted" }, `${m} missing`))));
  }); });
  return h("div", {}, form, out);
}

// Search rows of the documents' current versions: keywords, labels, media types, annotated or not.
function searchForm() {
  const out = h("div", { role: "status" });
  const form = h("form", { class: "inline", role: "search", "aria-label": "Search rows" },
    field("Keywords", h("input", { name: "q", type: "search", maxlength: 200 })),
    field("Labels (comma separated)", h("input", { name: "labels" })),
    field("Media types (comma separated)", h("input", { name: "media_types", placeholder: "image, text" })),
    h("button", { type: "submit" }, "Search"));
  const list = (v) => String(v || "").split(",").map((x) => x.trim()).filter(Boolean);
  form.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
    const f = new FormData(form); const body = { limit: 100 };
    if (f.get("q")) body.q = f.get("q");
    if (list(f.get("labels")).length) body.labels = list(f.get("labels"));
    if (list(f.get("media_types")).length) body.media_types = list(f.get("media_types"));
    const r = await api("POST", "/api/dam/search", { json: body });
    out.replaceChildren(h("p", { "data-total": String(r.total) }, `${fmt(r.total)} row(s) match${r.total > r.items.length ? ` (first ${r.items.length} shown)` : ""}`),
      table([{ label: "Document", render: (x) => link(`#/data/documents/${x.document_id}`, `${short(x.document_id)} v${fmt(x.document_version)}`) },
        { label: "Path", render: (x) => text(x.path) }, { label: "MD5", render: (x) => (x.md5 ? fileLink(x.md5) : "") },
        { label: "Label", render: (x) => text(x.label) }], r.items, { empty: "No row matches." }));
  }); });
  return h("div", {}, form, out);
}

// A zip or tar(.gz) of a folder: every file in it stored once by MD5, under its path in the archive.
export function archiveUploader() {
  const out = h("div", { role: "status" });
  const form = h("form", { class: "inline", "aria-label": "Upload an archive" },
    field("Archive (.zip, .tar, .tar.gz)", h("input", { name: "archive", type: "file", required: true, accept: ".zip,.tar,.tgz,.gz" })),
    field("Path prefix", h("input", { name: "prefix", placeholder: "e.g. faces/2026-12" })),
    h("button", { type: "submit" }, "Upload archive"));
  form.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
    const f = new FormData(form); const file = f.get("archive");
    const bar = h("progress", { max: 100, value: 0, "aria-label": `upload of ${file.name}` });
    out.replaceChildren(bar);
    const r = await upload("/api/dam/files/archive", { prefix: f.get("prefix") }, file, (done, total) => { bar.value = Math.round((100 * done) / total); });
    const flagged = r.files.filter((x) => (x.findings || []).length);
    out.replaceChildren(h("p", { class: "okc", "data-archive": String(r.count) }, `${fmt(r.count)} file(s): ${fmt(r.new)} new, ${fmt(r.duplicates)} already stored`),
      flagged.length ? h("ul", { class: "warning", "aria-label": "flagged files" }, flagged.map((x) => h("li", {}, `${text(x.path || x.md5)}${findingsNote(x.findings)}`))) : "");
    form.reset(); toast("Archive uploaded");
  }); });
  return h("div", {}, form, out);
}

export async function files(queryString) {
  if (!has("GET", "/api/dam/files")) return [h("h1", {}, "Files"), unavailable("DAM")];
  const query = new URLSearchParams(queryString || "");
  const listBox = h("div");
  const filter = h("form", { class: "inline", role: "search", "aria-label": "Filter files" },
    field("Media type", h("input", { name: "media_type", value: query.get("media_type") || "", placeholder: "image" })),
    field("Min size (bytes)", h("input", { name: "min_size", type: "number", min: 0, value: query.get("min_size") || "" })),
    field("Max size (bytes)", h("input", { name: "max_size", type: "number", min: 0, value: query.get("max_size") || "" })),
    h("button", { type: "submit" }, "Filter"));
  const load = async () => {
    const f = new FormData(filter);
    const rows = await api("GET", "/api/dam/files", { query: { media_type: f.get("media_type"), min_size: f.get("min_size"), max_size: f.get("max_size"), limit: 100 } });
    listBox.replaceChildren(filesTable(rows));
  };
  filter.addEventListener("submit", (e) => { e.preventDefault(); act(load); });
  await load();
  return [h("p", {}, h("a", { href: "#/data" }, "← Data")), h("h1", {}, "Files"),
    card("Stored files (newest first)", filter, listBox),
    card("Which MD5s are stored?", checkForm()),
    can("tester") ? card("Upload a folder as an archive", archiveUploader()) : null,
    card("Search rows of the documents", searchForm())];
}

export async function fileDetail(md5) {
  const f = await api("GET", `/api/dam/files/${md5}`);
  const about = h("dl", { class: "kv" }, ...[["MD5", text(f.md5)], ["Name", text(f.name)], ["Media type", text(f.media_type)],
    ["Content type", text(f.content_type)], ["Size", `${fmt(f.size)} bytes`], ["Dimensions", f.width ? `${fmt(f.width)}×${fmt(f.height)}` : ""],
    ["Object key", text(f.key)], ["Stored", fmtDate(f.created_at)]].filter(([, v]) => v !== "").flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  const content = `/api/dam/files/${md5}/content`;
  const preview = f.media_type === "image" ? h("img", { class: "preview", alt: `file ${text(f.name) || md5}`, src: content })
    : h("p", { class: "muted" }, "No preview for this type.");
  return [h("p", {}, h("a", { href: "#/data/files" }, "← Files")), h("h1", {}, `File: ${text(f.name) || md5}`),
    h("div", { class: "grid" }, card("File", about, h("p", {}, h("a", { href: content, download: text(f.name) || md5 }, "Download")),
      findingsList(f.findings) || h("p", { class: "muted" }, f.findings ? "The cleaners found nothing." : "Not checked by the cleaners.")), card("Preview", preview))];
}
