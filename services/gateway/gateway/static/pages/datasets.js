// A dataset version: its statistics (distributions, features), its leakage into the badcase test set of its
// function, its manifest; and leakage between any train and test dataset.
import { api, card, chart, field, fmt, fmtDate, fmtNum, h, has, link, select, short, table, text, unavailable, act } from "/ui/lib.js";

const list = (r) => (Array.isArray(r) ? r : r.items || []);
const SKIP = new Set(["dataset_id", "purpose"]);

// Every other {bucket: count} a statistics plugin gave (the response's `statistics` names them), first 50 buckets.
const DRAWN = new Set(["by_class", "by_media_type", "by_size", "by_dimensions", "by_box_label", "by_column", "by_feature"]);
function pluginDistributions(stats) {
  const isDistribution = (d) => d && typeof d === "object" && !Array.isArray(d) && Object.values(d).every((v) => typeof v === "number");
  return Object.values(stats.statistics || {}).flat().filter((k) => !DRAWN.has(k) && isDistribution(stats[k]))
    .map((k) => [k.replace(/^by_/, "").replaceAll("_", " "), Object.fromEntries(Object.entries(stats[k]).slice(0, 50))]);
}

export function distributionCharts(stats) {
  const groups = [["class", stats.by_class], ["media type", stats.by_media_type], ["size", stats.by_size],
    ["dimensions", stats.by_dimensions], ["box label", stats.by_box_label],
    ...Object.entries(stats.by_column || {}).map(([c, d]) => [`column ${c}`, d]), ...pluginDistributions(stats)];
  return groups.filter(([, d]) => d && Object.keys(d).length).map(([name, d]) =>
    card(`Distribution by ${name}`, chart("bar", Object.keys(d), [{ label: "rows", data: Object.values(d) }], { label: `distribution by ${name}` })));
}

// Feature columns of a table dataset: count, missing, range and mean per column.
function featureTable(stats) {
  const rows = Object.entries(stats.by_feature || {}).map(([name, f]) => ({ name, ...f }));
  if (!rows.length) return null;
  return card("Features", table([{ label: "Feature", key: "name" }, { label: "Kind", key: "kind" },
    { label: "Count", num: true, key: "count" }, { label: "Missing", num: true, key: "missing" },
    { label: "Min", num: true, render: (f) => fmtNum(f.min) }, { label: "Max", num: true, render: (f) => fmtNum(f.max) },
    { label: "Mean", num: true, render: (f) => fmtNum(f.mean) }], rows));
}

function totals(stats) {
  const kv = Object.entries(stats).filter(([k, v]) => !SKIP.has(k) && (typeof v === "number" || typeof v === "string"));
  return h("dl", { class: "kv", "aria-label": "totals" }, kv.flatMap(([k, v]) => [h("dt", {}, k.replaceAll("_", " ")), h("dd", {}, fmt(v))]));
}

export function leakageView(leak) {
  if (!leak) return h("p", { class: "muted" }, "Checked for train datasets only.");
  if (!leak.count) {
    return h("p", { class: "okc", "data-leakage": "0" }, `No leakage: no item is in the badcase test set${leak.function ? ` of ${fmt(leak.function)}` : ""}.`);
  }
  return h("div", { class: "warning", role: "alert", "data-leakage": String(leak.count) },
    h("p", {}, h("strong", {}, `${fmt(leak.count)} item(s) are also in the badcase test set`), leak.function ? ` of function ${fmt(leak.function)}` : ""),
    leak.warning ? h("p", {}, fmt(leak.warning)) : null,
    (leak.badcase_test_sets || []).length ? h("ul", {}, leak.badcase_test_sets.map((t) => h("li", {}, `${fmt(t.name)} v${fmt(t.version)}: ${fmt(t.count)} shared`))) : null,
    (leak.examples || []).length ? h("p", { class: "muted" }, `e.g. ${leak.examples.slice(0, 5).join(", ")}`) : null);
}

export async function datasetDetail(id) {
  const d = await api("GET", `/api/dam/datasets/${id}`);
  const stats = has("GET", "/api/dam/datasets/{dataset_id}/stats") ? await api("GET", `/api/dam/datasets/${id}/stats`).catch(() => null) : null;
  const about = h("dl", { class: "kv" }, ...[["Name", fmt(d.name)], ["Version", fmt(d.version)], ["Purpose", fmt(d.purpose)],
    ["Function", fmt(d.function)], ["Modality", fmt(d.modality)], ["Items", fmt(d.item_count)],
    ["Badcase test set", d.is_badcase_test_set ? "yes" : "no"], ["Created", `${fmtDate(d.created_at)} ${d.created_by ? `by ${fmt(d.created_by)}` : ""}`],
    ["Id", fmt(d.id)]].flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  const charts = stats ? distributionCharts(stats) : [];
  return [h("p", {}, h("a", { href: "#/data" }, "← Data")), h("h1", {}, `Dataset: ${fmt(d.name)} v${fmt(d.version)} (${fmt(d.purpose)})`),
    h("div", { class: "grid" }, card("Dataset", about, h("p", {}, h("a", { href: `/api/dam/datasets/${id}/manifest`, download: `dataset-${id}.jsonl` }, "Download the manifest (JSON lines)"))),
      card("Leakage into the badcase test set", leakageView(d.leakage))),
    h("div", { class: "spacer" }),
    stats ? card("Statistics", totals(stats)) : card("Statistics", unavailable("Dataset statistics")),
    stats ? featureTable(stats) : null,
    h("div", { class: "grid" }, charts.length ? charts : [card("Distributions", h("p", { class: "muted" }, "No distribution to draw."))])];
}

// Leakage between a train and a test dataset: content (by MD5, or a table row's hash) in both.
export function leakageForm(datasets) {
  const out = h("div", { role: "status" });
  const label = (d) => `${fmt(d.name)} v${fmt(d.version)} (${fmt(d.purpose)}, ${short(d.id)})`;
  const trains = datasets.filter((d) => d.purpose === "train"); const tests = datasets.filter((d) => d.purpose === "test");
  const form = h("form", { class: "inline", "aria-label": "Check leakage" },
    field("Train dataset", select("train", trains.map((d) => [d.id, label(d)]))),
    field("Test dataset", select("test", tests.map((d) => [d.id, label(d)]))),
    h("button", { type: "submit", disabled: !trains.length || !tests.length }, "Check leakage"));
  form.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
    const f = new FormData(form);
    const r = await api("GET", "/api/dam/datasets/leakage", { query: { train: f.get("train"), test: f.get("test") } });
    out.replaceChildren(r.shared_count
      ? h("div", { class: "warning", role: "alert", "data-shared": String(r.shared_count) }, h("p", {}, h("strong", {}, `${fmt(r.shared_count)} item(s) are in both datasets`)),
        h("ul", {}, r.shared.slice(0, 20).map((m) => h("li", {}, h("code", {}, fmt(m))))), r.shared.length > 20 ? h("p", { class: "muted" }, `… and ${r.shared_count - 20} more`) : null)
      : h("p", { class: "okc", "data-shared": "0" }, "No leakage: no item is in both datasets."));
  }); });
  return h("div", {}, form, out);
}

export function datasetsTable(items) {
  return table([{ label: "Dataset", render: (d) => link(`#/data/datasets/${d.id}`, d.name) }, { label: "Version", key: "version" },
    { label: "Function", render: (d) => text(d.function) },
    { label: "Purpose", render: (d) => [text(d.purpose ?? d.kind), d.is_badcase_test_set ? " (badcase test set)" : ""].join("") },
    { label: "Modality", render: (d) => text(d.modality) },
    { label: "Items", num: true, render: (d) => text(d.item_count ?? d.size ?? d.count) }, { label: "Id", render: (d) => short(d.id) },
    { label: "Created", render: (d) => fmtDate(d.created_at) }], items, { empty: "No datasets yet." });
}
export { list as datasetList };
