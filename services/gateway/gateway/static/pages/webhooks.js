// Webhooks: the gateway posts every public event a webhook's subject patterns (and function filter) match to its
// URL, signed as Standard Webhooks. Engineers see them and their delivery log; maintainers manage them.
import { act, api, badge, can, card, field, fmt, fmtDate, h, has, replayBody, replayFields, select, table, toast, unavailable } from "/ui/lib.js";

const BASE = "/api/gateway/webhooks";
const list = (v) => String(v || "").split(",").map((x) => x.trim()).filter(Boolean);

function state(w) {
  if (w.active) return badge("active");
  return h("span", {}, badge(w.disabled_reason === "paused" ? "paused" : "disabled"),
    w.disabled_reason && w.disabled_reason !== "paused" ? h("div", { class: "muted" }, w.disabled_reason) : null);
}

function secretShown(box, title, secret) {
  box.replaceChildren(h("p", {}, `${title} (shown once; receivers verify webhook-signature with it, e.g. the standardwebhooks library):`),
    h("pre", { "aria-label": "signing secret" }, secret));
}

// {"badcase.created": 1} <-> "badcase.created=1": an earlier contract version the deliveries are downgraded to.
const pins = (versions) => Object.entries(versions || {}).map(([k, v]) => `${k}=${v}`).join(", ");

function hookForm(label, subjects, w, onSubmit) {
  const form = h("form", { class: "stack", "aria-label": label },
    field("URL *", h("input", { name: "url", type: "url", required: true, maxlength: 2000, value: w ? w.url : "", placeholder: "https://hooks.example.org/mlife" })),
    field("Subjects * (comma separated NATS patterns, e.g. badcase.*, model.>)", h("input", { name: "subjects", required: true, list: `webhook-subjects-${w ? w.id : "new"}`, value: w ? w.subjects.join(", ") : "" })),
    h("datalist", { id: `webhook-subjects-${w ? w.id : "new"}` }, subjects.map((s) => h("option", { value: s.subject }, s.description))),
    field("Only these functions (comma separated; empty: all)", h("input", { name: "functions", value: w ? w.filter.function.join(", ") : "" })),
    field("Pin contract versions (subject=version, comma separated; empty: the latest of each)", h("input", { name: "versions", value: w ? pins(w.versions) : "", placeholder: "badcase.created=1" })),
    field("Description", h("input", { name: "description", maxlength: 2000, value: w ? w.description : "" })),
    h("div", {}, h("button", { type: "submit" }, w ? "Save" : "Create webhook")));
  form.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
    const f = new FormData(form);
    await onSubmit({ url: f.get("url"), subjects: list(f.get("subjects")), filter: { function: list(f.get("functions")) },
      versions: Object.fromEntries(list(f.get("versions")).map((p) => { const [k, v] = p.split("="); return [k.trim(), Number(v)]; })),
      description: f.get("description") || "" }, form);
  }); });
  return form;
}

function attempts(d) {
  if (!d.log.length) return h("span", { class: "muted" }, "not tried yet");
  return h("details", {}, h("summary", {}, `${d.attempts} attempt(s)`), table([{ label: "#", num: true, key: "number" },
    { label: "At", render: (a) => fmtDate(a.at) }, { label: "Status", render: (a) => fmt(a.status_code) },
    { label: "Error", render: (a) => fmt(a.error) }, { label: "ms", num: true, key: "duration_ms" }], d.log));
}

function deliveriesTable(page) {
  return table([{ label: "Created", render: (d) => fmtDate(d.created_at) }, { label: "Subject", key: "subject" },
    { label: "Event (webhook-id)", render: (d) => h("code", {}, d.event_id) },
    { label: "Kind", render: (d) => (d.test ? badge("test") : d.replay_id ? badge("replay") : "") },
    { label: "Status", render: (d) => badge(d.status) }, { label: "Attempts", render: attempts },
    { label: "Next attempt", render: (d) => (d.status === "pending" ? fmtDate(d.next_attempt_at) : "") }],
  page.items, { empty: "Nothing sent yet." });
}

function testForm(w, subjects, reload) {
  const form = h("form", { class: "inline", "aria-label": "Send a test event" },
    field("Subject", select("subject", subjects.map((s) => s.subject), subjects[0] && subjects[0].subject)),
    h("button", { type: "submit" }, "Send test"));
  form.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
    await api("POST", `/api/gateway/webhooks/${w.id}/test`, { json: { subject: new FormData(form).get("subject") } });
    toast("Test event queued"); await reload();
  }); });
  return form;
}

function replayForm(w, reload) {
  const form = h("form", { class: "inline", "aria-label": "Replay from" }, replayFields("MLIFE_BAM"),
    h("button", { type: "submit" }, "Replay"));
  form.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
    const r = await api("POST", `/api/gateway/webhooks/${w.id}/replay`, { json: replayBody(form) });
    toast(`Replay: ${r.events_read} event(s) read, ${r.deliveries} queued again`); await reload();
  }); });
  return form;
}

function replaysTable(rows) {
  return table([{ label: "When", render: (r) => fmtDate(r.requested_at) }, { label: "By", key: "requested_by" },
    { label: "From", render: (r) => (r.since ? fmtDate(r.since) : `${fmt(r.stream)} #${fmt(r.sequence)}`) },
    { label: "Read", num: true, key: "events_read" }, { label: "Queued", num: true, key: "deliveries" }],
  rows, { empty: "No replays." });
}

async function detail(box, id, subjects, rerender, offset = 0) {
  const reload = () => detail(box, id, subjects, rerender, offset);
  const [w, page, replays] = await Promise.all([api("GET", `/api/gateway/webhooks/${id}`),
    api("GET", `/api/gateway/webhooks/${id}/deliveries`, { query: { limit: 20, offset } }), api("GET", `/api/gateway/webhooks/${id}/replays`)]);
  const secretBox = h("div", { role: "status" });
  const manage = can("maintainer") ? [
    h("p", { class: "row" }, testForm(w, subjects, reload), replayForm(w, reload)),
    h("details", {}, h("summary", {}, "Edit"), hookForm("Edit the webhook", subjects, w, async (body) => {
      await api("PATCH", `/api/gateway/webhooks/${id}`, { json: body }); toast("Saved"); await rerender(); await reload(); })),
  ] : [];
  const pager = h("p", { class: "row" },
    offset > 0 ? h("button", { type: "button", class: "secondary small", onclick: () => act(() => detail(box, id, subjects, rerender, Math.max(0, offset - 20))) }, "Newer") : null,
    page.next_offset !== null ? h("button", { type: "button", class: "secondary small", onclick: () => act(() => detail(box, id, subjects, rerender, page.next_offset)) }, "Older") : null,
    h("button", { type: "button", class: "secondary small", onclick: () => act(reload) }, "Refresh"), ` ${page.total} deliveries`);
  box.replaceChildren(h("section", { class: "card", "data-webhook": w.id }, h("h2", {}, `Deliveries to ${w.url}`),
    h("p", { class: "row" }, state(w), ` subjects: ${fmt(w.subjects)}`, w.filter.function.length ? ` functions: ${fmt(w.filter.function)}` : "",
      Object.keys(w.versions || {}).length ? ` versions pinned: ${pins(w.versions)}` : ""),
    ...manage, secretBox, deliveriesTable(page), pager, h("h3", {}, "Replays"), replaysTable(replays)));
}

function actions(w, rerender, show, secretBox) {
  const buttons = [h("button", { type: "button", class: "secondary small", onclick: () => act(() => show(w)) }, "Deliveries")];
  if (can("maintainer")) buttons.push(
    h("button", { type: "button", class: "secondary small", onclick: () => act(async () => {
      await api("PATCH", `/api/gateway/webhooks/${w.id}`, { json: { active: !w.active } }); toast(w.active ? "Paused" : "Resumed"); await rerender(); }) }, w.active ? "Pause" : "Resume"),
    h("button", { type: "button", class: "secondary small", onclick: () => act(async () => {
      const r = await api("POST", `/api/gateway/webhooks/${w.id}/rotate-secret`);
      secretShown(secretBox, `New signing secret; the old one also signs until ${fmtDate(r.previous_secret_until)}`, r.secret); await rerender(); }) }, "Rotate secret"),
    h("button", { type: "button", class: "danger small", "aria-label": `delete the webhook to ${w.url}`, onclick: () => act(async () => {
      await api("DELETE", `/api/gateway/webhooks/${w.id}`); toast("Webhook deleted"); await rerender(); }) }, "Delete"));
  return h("span", { class: "row" }, buttons);
}

export async function webhooks() {
  if (!has("GET", BASE)) return [h("h1", {}, "Webhooks"), unavailable("The gateway's webhooks")];
  if (!can("engineer")) return [h("h1", {}, "Webhooks"), h("p", { class: "muted" }, "Webhooks are shown to engineers and managed by maintainers.")];
  const subjects = await api("GET", "/api/gateway/webhook-subjects");
  const listBox = h("div"); const secretBox = h("div", { role: "status" }); const detailBox = h("div");
  const show = (w) => detail(detailBox, w.id, subjects, rerender);
  const rerender = async () => listBox.replaceChildren(table([{ label: "URL", render: (w) => h("code", {}, w.url) },
    { label: "Subjects", render: (w) => fmt(w.subjects) }, { label: "Functions", render: (w) => fmt(w.filter.function) || "all" },
    { label: "State", render: state }, { label: "Description", key: "description" }, { label: "By", key: "created_by" },
    { label: "", render: (w) => actions(w, rerender, show, secretBox) }], await api("GET", "/api/gateway/webhooks"), { empty: "No webhooks." }));
  const create = can("maintainer") ? card("Create a webhook", hookForm("Create a webhook", subjects, null, async (body, form) => {
    const w = await api("POST", "/api/gateway/webhooks", { json: body });
    secretShown(secretBox, "Signing secret", w.secret); form.reset(); toast("Webhook created"); await rerender();
  }), secretBox) : secretBox;
  await rerender();
  return [h("h1", {}, "Webhooks"),
    h("p", { class: "muted" }, "The gateway posts every public event your subject patterns (and function filter) match, as the event's JSON envelope signed as Standard Webhooks (webhook-id is the event id: the same on retries and replays). Failed deliveries are retried for about a day; a 410 Gone answer disables the webhook. A private address must be allow-listed by the operator (MLIFE_GATEWAY_WEBHOOK_ALLOW_HOSTS)."),
    create, card("Webhooks", listBox), detailBox];
}
