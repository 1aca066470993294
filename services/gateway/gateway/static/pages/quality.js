// The cleaners' findings (DAM's cleaner plugins): on an upload's result and a file, and over a document version
// (run them, read the latest run). Findings flag; a flagged file is stored all the same.
import { act, api, can, card, fmt, h, has, short, table, text } from "/ui/lib.js";

const TONE = { error: "error", warning: "warning", info: "muted" };

// One line per finding, or null when there is none (an upload's `findings`).
export function findingsList(findings) {
  if (!findings || !findings.length) return null;
  return h("ul", { class: "findings", "aria-label": "findings" }, findings.map((f) => h("li", { class: TONE[f.severity] || "", "data-finding": f.code },
    `${fmt(f.severity)}: ${fmt(f.message)} (${fmt(f.cleaner)})`)));
}

// A short note after an upload's status: how many findings, worst first.
export function findingsNote(findings) {
  if (!findings || !findings.length) return "";
  const worst = ["error", "warning", "info"].find((s) => findings.some((f) => f.severity === s));
  return ` — ${findings.length} finding(s), ${worst}: ${findings.map((f) => f.code.replaceAll("_", " ")).join(", ")}`;
}

function report(r) {
  const counts = h("p", { "data-findings": String(r.total) }, `v${fmt(r.version)}: ${fmt(r.row_count)} row(s) checked by ${r.cleaners.join(", ")}`
    + `${r.classes ? ` against the classes ${r.classes.join(", ")}` : " (no class list)"}; ${fmt(r.total)} finding(s)`
    + (r.counts.length ? `: ${r.counts.map((c) => `${c.count} ${c.code.replaceAll("_", " ")}`).join(", ")}` : "."));
  return [counts, table([{ label: "#", num: true, render: (f) => text(f.position) }, { label: "MD5", render: (f) => (f.md5 ? h("a", { href: `/api/dam/files/${f.md5}/content` }, short(f.md5)) : "") },
    { label: "Severity", render: (f) => h("span", { class: TONE[f.severity] || "" }, f.severity) }, { label: "Cleaner", key: "cleaner" },
    { label: "Finding", render: (f) => text(f.message) }], r.findings, { empty: "No findings: every row passed." })];
}

// The document page's card: the latest run's findings of the current version, and a button to run the cleaners.
export async function findingsCard(doc) {
  if (!has("GET", "/api/dam/documents/{document_id}/findings")) return null;
  const box = h("div", { role: "status" });
  const latest = await api("GET", `/api/dam/documents/${doc.id}/findings`, { query: { limit: 100 } }).catch((err) => err);
  if (latest instanceof Error) box.replaceChildren(h("p", { class: "error" }, text(latest.message)));
  else box.replaceChildren(...(latest.checked ? report(latest) : [h("p", { class: "muted" }, "Not checked yet.")]));
  const run = can("engineer") && has("POST", "/api/dam/documents/{document_id}/findings")
    ? h("button", { type: "button", onclick: () => act(async () => box.replaceChildren(...report(await api("POST", `/api/dam/documents/${doc.id}/findings`, { json: {} })))) }, "Run the cleaners")
    : null;
  return card("Data quality (cleaners)", box, run);
}
