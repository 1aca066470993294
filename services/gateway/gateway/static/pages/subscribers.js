// Subscribers: outside systems that follow MLife's events on NATS with a login of their own. A maintainer names
// the public subjects; MLife makes the durables (one per stream holding them) and a read-only NATS login whose
// password is shown once. nats-server asks the gateway about that login (auth callout).
import { act, api, card, field, fmt, fmtDate, h, has, table, toast, unavailable, can } from "/ui/lib.js";

const BASE = "/api/gateway/subscribers";
const list = (v) => String(v || "").split(",").map((x) => x.trim()).filter(Boolean);

function filterOf(text) {
  const out = {};
  for (const pair of list(text)) {
    const at = pair.indexOf("=");
    if (at > 0) out[pair.slice(0, at).trim()] = pair.slice(at + 1).trim();
  }
  return out;
}

function credentialsShown(box, title, sub, c) {
  const snippet = `async for event in subscribe(${JSON.stringify(sub.subjects)}, durable="${sub.durable}", url="${c.nats_url}",\n` +
    `                             user="${c.nats_user}", password=PASSWORD, bind=True${Object.keys(sub.filter).length ? `, filter=${JSON.stringify(sub.filter)}` : ""}):`;
  box.replaceChildren(h("p", {}, `${title} (shown once; MLife keeps only its hash):`),
    h("dl", {}, h("dt", {}, "NATS"), h("dd", {}, h("code", {}, c.nats_url)), h("dt", {}, "User"), h("dd", {}, h("code", {}, c.nats_user)),
      h("dt", {}, "Password"), h("dd", {}, h("pre", { "aria-label": "subscriber password" }, c.password))),
    h("p", { class: "muted" }, "With the Python SDK (from mlife.events import subscribe):"), h("pre", {}, snippet));
}

function durablesTable(s) {
  return table([{ label: "Stream", key: "stream" }, { label: "Durable", render: (d) => h("code", {}, d.durable) },
    { label: "Subjects", render: (d) => fmt(d.filter_subjects) }, { label: "Pending", num: true, render: (d) => fmt(d.pending) },
    { label: "Unacked", num: true, render: (d) => fmt(d.ack_pending) }, { label: "Ack floor", num: true, render: (d) => fmt(d.ack_floor) }],
  s.durables, { empty: "No durables." });
}

function replayForm(s, reload) {
  const form = h("form", { class: "inline", "aria-label": `Replay ${s.name}` },
    field("Since (local time)", h("input", { name: "since", type: "datetime-local", step: 1 })),
    field("or stream", h("input", { name: "stream", placeholder: s.durables.length ? s.durables[0].stream : "", size: 12 })),
    field("from sequence", h("input", { name: "sequence", type: "number", min: 1, size: 8 })),
    h("button", { type: "submit" }, "Replay"));
  form.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
    const f = new FormData(form);
    const json = f.get("since") ? { since: new Date(String(f.get("since"))).toISOString() }
      : { stream: f.get("stream") || null, sequence: f.get("sequence") ? Number(f.get("sequence")) : null };
    await api("POST", `/api/gateway/subscribers/${s.id}/replay`, { json });
    toast(`${s.name}: its durables start again from there`); await reload();
  }); });
  return form;
}

async function detail(box, id, rerender) {
  const reload = () => detail(box, id, rerender);
  const [s, replays] = await Promise.all([api("GET", `/api/gateway/subscribers/${id}`), api("GET", `/api/gateway/subscribers/${id}/replays`)]);
  box.replaceChildren(h("section", { class: "card", "data-subscriber": s.name }, h("h2", {}, `Subscriber ${s.name}`),
    h("p", {}, `NATS user `, h("code", {}, s.nats_user), ` · subjects ${fmt(s.subjects)}`,
      Object.keys(s.filter).length ? ` · filter ${Object.entries(s.filter).map(([k, v]) => `${k}=${v}`).join(", ")} (applied by the SDK)` : ""),
    durablesTable(s), h("p", { class: "row" }, replayForm(s, async () => { await reload(); await rerender(); }),
      h("button", { type: "button", class: "secondary small", onclick: () => act(reload) }, "Refresh")),
    h("h3", {}, "Replays"), table([{ label: "When", render: (r) => fmtDate(r.requested_at) }, { label: "By", key: "requested_by" },
      { label: "From", render: (r) => (r.since ? fmtDate(r.since) : `${fmt(r.stream)} #${fmt(r.sequence)}`) }], replays, { empty: "No replays." })));
}

function actions(s, rerender, show, secretBox) {
  return h("span", { class: "row" },
    h("button", { type: "button", class: "secondary small", onclick: () => act(() => show(s)) }, "Details"),
    h("button", { type: "button", class: "secondary small", onclick: () => act(async () => {
      const c = await api("POST", `/api/gateway/subscribers/${s.id}/rotate`);
      credentialsShown(secretBox, `New password of ${s.name}; the old one is refused from now on`, s, c); await rerender(); }) }, "Rotate password"),
    h("button", { type: "button", class: "danger small", "aria-label": `delete the subscriber ${s.name}`, onclick: () => act(async () => {
      await api("DELETE", `/api/gateway/subscribers/${s.id}`); toast(`${s.name} deleted: its durables and its login are gone`); await rerender(); }) }, "Delete"));
}

function createForm(secretBox, rerender) {
  const form = h("form", { class: "stack", "aria-label": "Create a subscriber" },
    field("Name * (lower-case letters, digits, _ and -)", h("input", { name: "name", required: true, maxlength: 40, pattern: "[a-z0-9][a-z0-9_\\-]*", placeholder: "acme-dashboard" })),
    field("Subjects * (comma separated NATS patterns, e.g. model.>, badcase.created)", h("input", { name: "subjects", required: true })),
    field("Filter (field=value, comma separated, e.g. function=digits; applied by the SDK)", h("input", { name: "filter" })),
    field("Start", h("select", { name: "deliver" }, h("option", { value: "all" }, "from the oldest event kept"), h("option", { value: "new" }, "from now on"))),
    field("Description", h("input", { name: "description", maxlength: 500 })),
    h("div", {}, h("button", { type: "submit" }, "Create subscriber")));
  form.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
    const f = new FormData(form);
    const s = await api("POST", "/api/gateway/subscribers", { json: { name: f.get("name"), subjects: list(f.get("subjects")), filter: filterOf(f.get("filter")),
      deliver: f.get("deliver"), description: f.get("description") || "" } });
    credentialsShown(secretBox, `Credentials of ${s.name}`, s, s.credentials); form.reset(); toast("Subscriber created"); await rerender();
  }); });
  return form;
}

export async function subscribers() {
  if (!has("GET", BASE)) return [h("h1", {}, "Subscribers"), unavailable("The gateway's subscribers")];
  if (!can("maintainer")) return [h("h1", {}, "Subscribers"), h("p", { class: "muted" }, "Outside subscribers are managed by maintainers.")];
  const listBox = h("div"); const secretBox = h("div", { role: "status" }); const detailBox = h("div");
  const show = (s) => detail(detailBox, s.id, rerender);
  const pending = (s) => s.durables.map((d) => `${d.stream}: ${fmt(d.pending)}`).join(", ");
  const rerender = async () => listBox.replaceChildren(table([{ label: "Name", render: (s) => h("code", {}, s.name) },
    { label: "Subjects", render: (s) => fmt(s.subjects) }, { label: "Durables (pending)", render: pending },
    { label: "Description", key: "description" },
    { label: "Created", render: (s) => `${fmtDate(s.created_at)} by ${s.created_by}` },
    { label: "", render: (s) => actions(s, rerender, show, secretBox) }], await api("GET", "/api/gateway/subscribers"), { empty: "No subscribers." }));
  await rerender();
  return [h("h1", {}, "Subscribers"),
    h("p", { class: "muted" }, "An outside system gets a NATS login of its own that may read only its durables (one per stream holding the subjects it follows): it cannot publish, nor make or delete consumers. The event API: ",
      h("a", { href: "/api/gateway/events/asyncapi.json" }, "AsyncAPI document"), "."),
    card("Create a subscriber", createForm(secretBox, rerender), secretBox), card("Subscribers", listBox), detailBox];
}
