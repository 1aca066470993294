// Previews of a badcase's data, composed from the services (they stay independent): BAM previews what it stores
// (its attachment, a served input), DAM previews its own files by MD5 — the badcase's `preview` says which. The
// overlays of structured predictions (detection boxes, labels, text spans) are drawn here, as SVG and text nodes:
// user text never goes through innerHTML. The session cookie authenticates <img>, <audio> and <video> requests
// (same origin), so media elements load the API's URLs directly and seek with Range requests.
import { api, fmt, h, text } from "/ui/lib.js";

const SVG = "http://www.w3.org/2000/svg";
export const COLORS = { matched: "#1e9e3c", wrong: "#e0241b", missed: "#f29d0c" };
// Plain letters (an emoji font is not on every machine)
const TYPE_ICONS = { image: "IMG", audio: "AUD", video: "VID", text: "TXT", json: "{ }", table: "ROW", tensor: "ND", other: "FILE" };
// Kinds whose preview may be a picture: a served input (JSON) is drawn when its tensor has an image's shape; when
// the preview turns out to be JSON, the thumbnail falls back to the icon.
const VISUAL = new Set(["image", "audio", "video", "tensor", "json"]);

// Where the badcase's preview lives: {source: "bam" | "dam" | null, md5, media_type}; `preview: null` is nothing
// to preview. An older BAM without the field: its own attachment when it has data.
export function previewOf(b) {
  const p = b.preview && typeof b.preview === "object" ? b.preview : null;
  if (p) return { source: p.source || null, md5: p.md5 || b.data_md5 || null, media_type: p.media_type || b.media_type || null };
  if ("preview" in b) return { source: null, md5: b.data_md5 || null, media_type: b.media_type || null };
  return { source: b.data_md5 ? "bam" : null, md5: b.data_md5 || null, media_type: b.media_type || null };
}

function withQuery(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

// The preview URL of a badcase with parameters (size, view, start, end, at, frames), from BAM or DAM.
export function previewUrl(b, params = {}) {
  const p = previewOf(b);
  if (p.source === "dam" && p.md5) return withQuery(`/api/dam/files/${p.md5}/preview`, params);
  if (p.source === "bam") return withQuery(`/api/bam/badcases/${b.id}/preview`, params);
  return null;
}

// The original data, for players and the full-size image: both routes answer Range requests.
export function mediaUrl(b) {
  const p = previewOf(b);
  if (p.source === "dam" && p.md5) return `/api/dam/files/${p.md5}/content`;
  if (p.source === "bam" && b.data_md5) return `/api/bam/badcases/${b.id}/data`;
  return null;
}

const num = (v) => (typeof v === "number" && Number.isFinite(v) ? v : null);
export function segmentOf(b) {
  return { start: num(b.segment_start), end: num(b.segment_end), frameStart: num(b.frame_start), frameEnd: num(b.frame_end),
    duration: num(b.duration) };
}
const secs = (v) => `${v.toFixed(2)} s`;
// A prediction or ground truth in a few words: "2 boxes: cat, dog", "3 spans", the label.
export function outcomeText(v) {
  const boxes = boxesOf(v); const spans = spansOf(v);
  if (boxes) return `${boxes.length} box${boxes.length === 1 ? "" : "es"}${boxes.length ? `: ${[...new Set(boxes.map((b) => b.label).filter(Boolean))].join(", ")}` : ""}`;
  if (spans) return `${spans.length} span${spans.length === 1 ? "" : "s"}`;
  const label = labelOf(v);
  return label !== null ? label : text(v);
}
export function segmentText(b) {
  const s = segmentOf(b);
  const parts = [];
  if (s.start !== null) parts.push(s.end !== null ? `${secs(s.start)} – ${secs(s.end)}` : `from ${secs(s.start)}`);
  if (s.frameStart !== null) parts.push(`frames ${s.frameStart}${s.frameEnd !== null ? `–${s.frameEnd}` : ""}`);
  if (s.duration !== null) parts.push(parts.length ? `of ${secs(s.duration)}` : `the whole recording (${secs(s.duration)})`);
  return parts.join(", ");
}

function icon(mediaType) {
  const t = mediaType || "other";
  return h("span", { class: "thumb icon", role: "img", "aria-label": `${t} data`, title: `${t} data` }, TYPE_ICONS[t] || TYPE_ICONS.other);
}

// The list's thumbnail: an image (lazy, fixed size) from BAM or DAM, a small waveform for audio, a poster for
// video; an icon by media type when there is nothing to draw (or the preview turns out not to be an image).
export function thumbnail(b) {
  const p = previewOf(b);
  const type = p.media_type || b.media_type;
  // a DAM file named without its media type (MTT's testing badcases): DAM knows it, so its preview is tried
  if (!p.source || !(VISUAL.has(type) || (p.source === "dam" && !type))) return icon(type);
  const s = segmentOf(b);
  const attrs = { class: "thumb", alt: `preview of ${text(b.function)}`, loading: "lazy", decoding: "async", width: 48, height: 48,
    "data-source": p.source };
  // audio: a small waveform of the segment; video: the frame at its start; else the image itself
  const q = type === "audio" ? `view=waveform&size=96${seg(s)}` : type === "video" ? `view=poster&size=96${at(s)}` : "size=96";
  const img = p.source === "dam" && p.md5 ? h("img", { ...attrs, src: `/api/dam/files/${p.md5}/preview?${q}` })
    : h("img", { ...attrs, src: `/api/bam/badcases/${b.id}/preview?${q}` });
  img.addEventListener("error", () => img.replaceWith(icon(type)), { once: true });
  return img;
}
function seg(s) { return `${s.start !== null ? `&start=${s.start}` : ""}${s.end !== null ? `&end=${s.end}` : ""}`; }
function at(s) { return s.start !== null ? `&at=${s.start}` : ""; }

// --- overlays ----------------------------------------------------------------------------------------------

// Boxes as BAM takes them: `{"boxes": [{"label", "box": [x1, y1, x2, y2], "score"}]}`, or MTT's parallel lists
// `{"boxes": [[x1, y1, x2, y2]], "labels": [...], "scores": [...]}`.
function boxesOf(v) {
  const list = v && typeof v === "object" && Array.isArray(v.boxes) ? v.boxes : null;
  if (!list) return null;
  const labels = Array.isArray(v.labels) ? v.labels : []; const scores = Array.isArray(v.scores) ? v.scores : [];
  return list.map((x, i) => (Array.isArray(x) ? { label: labels[i], box: x, score: scores[i] } : x))
    .filter((x) => x && Array.isArray(x.box) && x.box.length === 4 && x.box.every((n) => typeof n === "number"))
    .map((x) => ({ label: text(x.label), box: x.box, score: num(x.score) }));
}
function labelOf(v) {
  if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") return String(v);
  if (v && typeof v === "object" && !Array.isArray(v) && "label" in v && !("boxes" in v) && !("spans" in v)) return text(v.label);
  return null;
}
function spansOf(v) {
  const list = v && typeof v === "object" && Array.isArray(v.spans) ? v.spans : null;
  if (!list) return null;
  return list.filter((s) => s && Number.isInteger(s.start) && Number.isInteger(s.end) && s.end > s.start)
    .map((s) => ({ start: s.start, end: s.end, label: text(s.label) }));
}

export function iou(a, b) {
  const w = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const hgt = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = w * hgt;
  const area = (r) => Math.max(0, r[2] - r[0]) * Math.max(0, r[3] - r[1]);
  const union = area(a) + area(b) - inter;
  return union > 0 ? inter / union : 0;
}

// Greedy matching, best IoU first: a prediction and a ground-truth box of the same label with IoU ≥ 0.5 match.
export function matchBoxes(pred, truth) {
  const pairs = [];
  pred.forEach((p, i) => truth.forEach((t, j) => {
    if (p.label === t.label) { const v = iou(p.box, t.box); if (v >= 0.5) pairs.push([v, i, j]); }
  }));
  pairs.sort((x, y) => y[0] - x[0]);
  const pm = new Array(pred.length).fill(-1); const tm = new Array(truth.length).fill(-1);
  for (const [, i, j] of pairs) if (pm[i] < 0 && tm[j] < 0) { pm[i] = j; tm[j] = i; }
  return { pred: pm, truth: tm };
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(fmt(c)));
  return el;
}

function boxLayer(w, hgt, pred, truth) {
  const m = matchBoxes(pred, truth);
  const font = Math.max(10, Math.round(Math.min(w, hgt) / 22));
  const layer = svg("svg", { class: "overlay", viewBox: `0 0 ${w} ${hgt}`, preserveAspectRatio: "none", "aria-label": "detection boxes" });
  const draw = (b, kind, role, dashed) => {
    const [x1, y1, x2, y2] = b.box;
    const color = COLORS[kind];
    const label = `${role === "prediction" ? "pred" : "truth"}${b.label ? `: ${b.label}` : ""}${b.score !== null && role === "prediction" ? ` ${b.score.toFixed(2)}` : ""}`;
    const g = svg("g", { "data-kind": kind, "data-role": role, "data-label": b.label },
      svg("rect", { x: x1, y: y1, width: Math.max(0, x2 - x1), height: Math.max(0, y2 - y1), fill: "none", stroke: color,
        "stroke-width": 3, "vector-effect": "non-scaling-stroke", "stroke-dasharray": dashed ? "6 3" : null }),
      svg("text", { x: x1 + 2, y: role === "prediction" ? Math.max(font, y1 - 3) : Math.min(hgt - 2, y2 + font), fill: color,
        "font-size": font, "font-weight": "600", "paint-order": "stroke", stroke: "#fff", "stroke-width": Math.max(1, font / 5) }, label));
    layer.append(g);
  };
  truth.forEach((t, j) => draw(t, m.truth[j] >= 0 ? "matched" : "missed", "truth", true));
  pred.forEach((p, i) => draw(p, m.pred[i] >= 0 ? "matched" : "wrong", "prediction", false));
  layer.dataset.matched = String(m.pred.filter((j) => j >= 0).length);
  layer.dataset.wrong = String(m.pred.filter((j) => j < 0).length);
  layer.dataset.missed = String(m.truth.filter((i) => i < 0).length);
  return layer;
}

function labelLayer(pred, truth) {
  const right = truth !== null && pred === truth;
  return h("div", { class: "overlay labels", "aria-label": "classification" },
    pred !== null ? h("span", { class: `tag ${truth === null ? "" : right ? "right" : "wrong"}`, "data-role": "prediction" }, `pred: ${pred}`) : null,
    truth !== null ? h("span", { class: "tag truth", "data-role": "truth" }, `truth: ${truth}`) : null);
}

// The image at full size with what was predicted drawn over it: boxes (matched green, a wrong prediction red, a
// missed truth amber) in the image's own pixel coordinates, or the classification labels.
function overlaid(src, b, alt) {
  const img = h("img", { class: "preview", alt, src });
  const frame = h("figure", { class: "overlaid", "data-preview": "image" }, img);
  const pred = boxesOf(b.prediction); const truth = boxesOf(b.ground_truth);
  const place = () => {
    // small images are shown larger (the boxes with them), large ones fit the card
    const nw = img.naturalWidth; const nh = img.naturalHeight;
    let width = Math.min(560, Math.max(nw, 360));
    if (nh * (width / nw) > 480) width = Math.max(1, Math.floor(480 * (nw / nh)));
    img.style.width = `${width}px`;
    if (width >= nw * 3) img.classList.add("pixelated");
    if (pred || truth) frame.append(boxLayer(img.naturalWidth, img.naturalHeight, pred || [], truth || []));
    else {
      const pl = labelOf(b.prediction); const tl = labelOf(b.ground_truth);
      if (pl !== null || tl !== null) frame.append(labelLayer(pl, tl));
    }
    frame.dataset.loaded = "true";
  };
  if (img.complete && img.naturalWidth) place(); else img.addEventListener("load", place, { once: true });
  return frame;
}

// Text with spans highlighted (text nodes and <mark>s; overlapping spans: the first wins).
function highlighted(snippet, spans, other, role) {
  const out = h("p", { class: "spans", "data-role": role });
  const sorted = [...spans].sort((a, b) => a.start - b.start);
  let at = 0;
  for (const s of sorted) {
    if (s.start < at || s.start >= snippet.length) continue;
    const end = Math.min(s.end, snippet.length);
    if (s.start > at) out.append(document.createTextNode(snippet.slice(at, s.start)));
    const same = other.some((o) => o.start === s.start && o.end === s.end && o.label === s.label);
    const kind = same ? "matched" : role === "prediction" ? "wrong" : "missed";
    out.append(h("mark", { class: kind, "data-kind": kind, title: s.label || null }, snippet.slice(s.start, end), s.label ? h("sup", {}, s.label) : null));
    at = end;
  }
  if (at < snippet.length) out.append(document.createTextNode(snippet.slice(at)));
  return out;
}

function snippetView(p, b) {
  const snippet = text(p.snippet ?? p.text);
  const pred = spansOf(b.prediction); const truth = spansOf(b.ground_truth);
  if (!pred && !truth) return h("pre", { "data-preview": "snippet" }, snippet, p.truncated ? "\n…" : "");
  return h("div", { "data-preview": "spans" },
    h("p", { class: "muted" }, "Prediction"), highlighted(snippet, pred || [], truth || [], "prediction"),
    h("p", { class: "muted" }, "Ground truth"), highlighted(snippet, truth || [], pred || [], "truth"),
    p.truncated ? h("p", { class: "muted" }, "(the beginning of the text)") : null);
}

function tableView(p) {
  const columns = Array.isArray(p.columns) ? p.columns.map(text) : [];
  const rows = Array.isArray(p.rows) ? p.rows : [];
  return h("div", { class: "table-scroll", "data-preview": "table" }, h("table", { "aria-label": "rows" },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, (Array.isArray(r) ? r : columns.map((c) => r[c])).map((v) =>
      h("td", { class: typeof v === "number" ? "num" : null }, text(v))))))));
}

function summaryView(p) {
  const entries = Object.entries(p).filter(([k]) => k !== "kind");
  return h("dl", { class: "kv", "data-preview": text(p.kind) || "summary" }, entries.flatMap(([k, v]) => [h("dt", {}, k),
    h("dd", {}, typeof v === "object" && v !== null && !Array.isArray(v) ? JSON.stringify(v) : text(v))]));
}

// Fetches a preview (PNG or JSON) with the session cookie: an image becomes an object URL (revoked when the
// page changes), JSON is returned as data; null when there is no preview.
const objectUrls = new Set();
export function revokePreviews() { for (const u of objectUrls) URL.revokeObjectURL(u); objectUrls.clear(); }
window.addEventListener("hashchange", revokePreviews);
async function fetchPreview(url) {
  const r = await fetch(url, { credentials: "same-origin" });
  if (!r.ok) return { status: r.status, detail: await r.json().then((d) => d.detail).catch(() => "") };
  const type = r.headers.get("content-type") || "";
  if (type.startsWith("image/")) { const u = URL.createObjectURL(await r.blob()); objectUrls.add(u); return { image: u }; }
  if (type.includes("json")) return { json: await r.json() };
  return { status: 415, detail: `a preview of type ${type}` };
}

function toggle(options, onPick) {
  const box = h("div", { class: "segmented", role: "group", "aria-label": "view" });
  for (const [value, label] of options) {
    const b = h("button", { type: "button", class: "secondary small", "data-view": value, "aria-pressed": "false",
      onclick: () => { for (const x of box.children) x.setAttribute("aria-pressed", String(x === b)); onPick(value); } }, label);
    box.append(b);
  }
  box.firstChild.setAttribute("aria-pressed", "true");
  return box;
}

// A player that starts at the segment: a media fragment, and currentTime set once the metadata is known.
function player(tag, src, s, label) {
  const frag = s.start !== null ? `#t=${s.start}${s.end !== null ? `,${s.end}` : ""}` : "";
  const el = h(tag, { controls: true, preload: "metadata", src: src + frag, "aria-label": label, class: tag === "video" ? "player" : null });
  if (s.start !== null) {
    el.dataset.segmentStart = String(s.start);
    el.addEventListener("loadedmetadata", () => { if (Math.abs(el.currentTime - s.start) > 0.01) el.currentTime = s.start; }, { once: true });
  }
  return el;
}

function audioView(b, s) {
  const view = (v) => previewUrl(b, { view: v, start: s.start, end: s.end });
  const img = h("img", { class: "preview wave", alt: `waveform of badcase ${text(b.function)}`, src: view("waveform"), "data-view": "waveform" });
  const src = mediaUrl(b);
  return h("div", { class: "stack-v", "data-preview": "audio" },
    toggle([["waveform", "Waveform"], ["spectrogram", "Spectrogram"]], (v) => { img.src = view(v); img.dataset.view = v; img.alt = `${v} of badcase ${text(b.function)}`; }),
    img, src ? player("audio", src, s, "play the recording") : null);
}

function videoView(b, s) {
  const src = mediaUrl(b);
  return h("div", { class: "stack-v", "data-preview": "video" },
    h("figure", {}, h("img", { class: "preview poster", alt: "frame at the segment start", src: previewUrl(b, { view: "poster", at: s.start }) }),
      h("figcaption", { class: "muted" }, s.start !== null ? `Frame at ${secs(s.start)}` : "First frame")),
    h("figure", {}, h("img", { class: "preview strip", alt: "frames over the segment", src: previewUrl(b, { view: "strip", start: s.start, end: s.end, frames: 8 }) }),
      h("figcaption", { class: "muted" }, "Frames over the segment")),
    src ? player("video", src, s, "play the video") : null);
}

// The badcase page's preview: the full-size view with prediction and ground truth.
export async function previewView(b) {
  const p = previewOf(b);
  let type = p.media_type || b.media_type;
  if (p.source === "dam" && !type && p.md5) {  // named by MD5 alone: DAM knows what the file is
    type = await api("GET", `/api/dam/files/${p.md5}`).then((f) => f.media_type).catch(() => null);
  }
  const s = segmentOf(b);
  const none = (why) => h("p", { class: "muted" }, why);
  if (!p.source) return none(b.data_md5 || (b.data || []).length ? "The data is not stored on the platform (a key or a URL): nothing to preview."
    : "No stored data to preview.");
  const segment = segmentText(b) ? h("p", { class: "segment", "data-field": "segment" }, `Segment: ${segmentText(b)}`) : null;
  if (type === "table" && b.features && Object.keys(b.features).length) return none("A tabular badcase: its feature row is below.");
  if (type === "audio") return h("div", {}, segment, audioView(b, s));
  if (type === "video") return h("div", {}, segment, videoView(b, s));
  if (type === "image") {
    // the original pixels (the boxes are in its coordinates): DAM serves its content typed; BAM's attachment is
    // fetched as a blob; the preview PNG when the original cannot be shown
    if (p.source === "dam") return overlaid(mediaUrl(b), b, `data of badcase ${text(b.function)}`);
    const r = await fetch(mediaUrl(b), { credentials: "same-origin" }).catch(() => null);
    if (r && r.ok) {
      const u = URL.createObjectURL(await r.blob()); objectUrls.add(u);
      const frame = overlaid(u, b, `data of badcase ${text(b.function)}`);
      frame.querySelector("img").addEventListener("error", () => frame.replaceWith(overlaid(previewUrl(b), b, `data of badcase ${text(b.function)}`)), { once: true });
      return frame;
    }
    return overlaid(previewUrl(b), b, `data of badcase ${text(b.function)}`);
  }
  const got = await fetchPreview(previewUrl(b)).catch(() => null);
  if (!got || got.status) return none(got && got.detail ? `No preview: ${text(got.detail)}` : "No preview for this data.");
  if (got.image) return overlaid(got.image, b, `data of badcase ${text(b.function)}`);
  const j = got.json || {};
  if (j.kind === "snippet" || typeof j.snippet === "string") return snippetView(j, b);
  if (j.kind === "table") return tableView(j);
  return summaryView(j);
}
