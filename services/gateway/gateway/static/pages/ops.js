// Operations: events no handler could apply (dead letters, per service) and MSM's outbound webhooks.
import { act, api, badge, can, card, field, fmt, fmtDate, h, has, state, table, toast, unavailable } from "/ui/lib.js";

// Every service whose API offers dead letters, from the merged OpenAPI (`/api/<service>/dead-letters`).
function deadLetterServices() {
  return Object.keys((state.api && state.api.paths) || {}).map((p) => p.match(/^\/api\/([a-z]+)\/dead-letters$/))
    .filter(Boolean).map((m) => m[1]).sort((a, b) => (a === "gateway") - (b === "gateway") || a.localeCompare(b));
}

// Re-drive (maintainers, after a fix): the consumer applies the event again, exactly once; then the page reloads.
function redriveButton(svc, r) {
  if (r.redriven_at) return h("span", { class: "muted" }, `${fmt(r.redrive_note)} by ${fmt(r.redriven_by)}, ${fmtDate(r.redriven_at)}`);
  if (!can("maintainer")) return r.redrives ? h("span", { class: "muted" }, `${r.redrives} failed re-drive(s)`) : "";
  return h("span", {}, h("button", { type: "button", class: "secondary small", "data-redrive": r.id, onclick: () => act(async () => {
    try {
      const [res] = await api("POST", `/api/${svc}/dead-letters/redrive`, { query: { id: r.id } });
      toast(res.outcome === "applied" ? "Re-driven: applied" : "Already applied: nothing changed");
    } finally { window.dispatchEvent(new HashChangeEvent("hashchange")); } }) }, "Re-drive"),
  r.redrive_error ? h("div", { class: "muted", title: r.redrive_error }, `last attempt failed (${r.redrives})`) : null);
}

function lettersTable(svc, rows, consumer) {
  return table([{ label: "When", render: (r) => fmtDate(r.created_at) }, { label: "Consumer", key: "consumer" },
    { label: "Subject", key: "subject" }, { label: "Reason", render: (r) => badge(r.reason) },
    { label: "Deliveries", num: true, key: "deliveries" }, { label: "Error", render: (r) => fmt(r.error).slice(0, 300) },
    { label: "Event", render: (r) => h("span", {}, fmt(r.event_id) || "(no id)", r.payload ? h("details", {}, h("summary", {}, "payload"), h("pre", {}, fmt(r.payload))) : null) },
    { label: "Re-drive", render: (r) => redriveButton(svc, r) }],
  rows, { empty: consumer ? `None for consumer ${consumer}.` : "None: every event was applied." });
}

// All of one consumer's pending letters at once (shown when the page is filtered by a consumer).
function redriveAll(svc, consumer, rows) {
  if (!consumer || !can("maintainer") || !rows.some((r) => !r.redriven_at)) return null;
  return h("button", { type: "button", class: "small", "data-redrive-all": svc, onclick: () => act(async () => {
    const results = await api("POST", `/api/${svc}/dead-letters/redrive`, { query: { consumer } });
    const failed = results.filter((x) => x.outcome === "failed").length;
    toast(`${results.length - failed} re-driven, ${failed} failed`, failed > 0);
    window.dispatchEvent(new HashChangeEvent("hashchange")); }) }, `Re-drive all pending of ${consumer}`);
}

export async function deadLetters(queryString) {
  const query = new URLSearchParams(queryString || "");
  const consumer = query.get("consumer") || "";
  const services = deadLetterServices();
  const filter = h("form", { class: "inline", role: "search", "aria-label": "Filter dead letters" },
    field("Consumer (durable name)", h("input", { name: "consumer", value: consumer, placeholder: "e.g. bam-serving-feedback" })),
    h("button", { type: "submit" }, "Filter"));
  filter.addEventListener("submit", (e) => { e.preventDefault(); const c = new FormData(filter).get("consumer");
    location.hash = c ? `#/dead-letters?${new URLSearchParams({ consumer: String(c) })}` : "#/dead-letters"; });
  const sections = await Promise.all(["bam", "dam", "mtt", "msm", "gateway"].filter((s) => services.includes(s) || s !== "gateway").map(async (svc) => {
    if (!services.includes(svc)) return card(`${svc.toUpperCase()}`, unavailable(svc.toUpperCase()));
    try {
      const rows = await api("GET", `/api/${svc}/dead-letters`, { query: { limit: 100, consumer } });
      return h("section", { class: "card", "data-service": svc }, h("h2", {}, `${svc.toUpperCase()}: ${rows.length} dead-lettered`),
        redriveAll(svc, consumer, rows), lettersTable(svc, rows, consumer));
    } catch { return card(`${svc.toUpperCase()}`, unavailable(svc.toUpperCase())); }
  }));
  return [h("h1", {}, "Dead letters"),
    h("p", { class: "muted" }, "Events a consumer could not apply (malformed, or failing after its retries): kept with the reason, never retried forever, never blocking the rest. After a fix, a maintainer re-drives them: each takes effect once."),
    h("p", { class: "muted" }, "Following MLife's events from another system: ",
      h("a", { href: "/api/gateway/events/asyncapi.json", "data-testid": "asyncapi-link" }, "the event API (AsyncAPI 3.0)"),
      " — every subject, its stream, its payload schema and an example; docs/events.md shows it for people."),
    card("Filter", filter), ...sections];
}

function hooksTable(hooks, rerender, showDeliveries) {
  return table([{ label: "URL", render: (w) => h("code", {}, fmt(w.url)) }, { label: "Events", render: (w) => (w.events || []).join(", ") },
    { label: "State", render: (w) => badge(w.active ? "active" : "paused") }, { label: "Description", key: "description" },
    { label: "By", key: "created_by" }, { label: "Created", render: (w) => fmtDate(w.created_at) },
    { label: "", render: (w) => h("span", { class: "row" },
      h("button", { type: "button", class: "secondary small", onclick: () => showDeliveries(w) }, "Deliveries"),
      h("button", { type: "button", class: "secondary small", onclick: () => act(async () => {
        await api("PATCH", `/api/msm/webhooks/${w.id}`, { json: { active: !w.active } }); toast(w.active ? "Paused" : "Resumed"); rerender(); }) }, w.active ? "Pause" : "Resume"),
      h("button", { type: "button", class: "danger small", "aria-label": `delete the webhook to ${fmt(w.url)}`, onclick: () => act(async () => {
        await api("DELETE", `/api/msm/webhooks/${w.id}`); toast("Webhook deleted"); rerender(); }) }, "Delete")) }],
  hooks, { empty: "No webhooks." });
}

export async function webhooks() {
  if (!has("GET", "/api/msm/webhooks")) return [h("h1", {}, "Webhooks"), unavailable("MSM")];
  if (!can("maintainer")) return [h("h1", {}, "Webhooks"), h("p", { class: "muted" }, "Webhooks (targets and signing secrets) are managed by maintainers.")];
  const listBox = h("div"); const secretBox = h("div", { role: "status" }); const deliveriesBox = h("div");
  const rerender = async () => listBox.replaceChildren(hooksTable(await api("GET", "/api/msm/webhooks"), rerender, showDeliveries));
  async function showDeliveries(w) {
    await act(async () => {
      // The webhook as it is now (another maintainer may have paused it) with its latest deliveries.
      const [hook, rows] = await Promise.all([api("GET", `/api/msm/webhooks/${w.id}`),
        api("GET", `/api/msm/webhooks/${w.id}/deliveries`, { query: { limit: 50 } })]);
      deliveriesBox.replaceChildren(h("section", { class: "card", "data-webhook": hook.id }, h("h2", {}, `Deliveries to ${fmt(hook.url)}`),
        h("p", { class: "row" }, badge(hook.active ? "active" : "paused"), ` events: ${fmt(hook.events)}`,
          h("button", { type: "button", class: "secondary small", onclick: () => showDeliveries(hook) }, "Refresh")), table([{ label: "Subject", key: "subject" },
        { label: "Status", render: (d) => badge(d.status) }, { label: "Attempts", num: true, key: "attempts" },
        { label: "Last answer", render: (d) => fmt(d.last_status_code) || fmt(d.last_error) }, { label: "Created", render: (d) => fmtDate(d.created_at) },
        { label: "Delivered", render: (d) => fmtDate(d.delivered_at) }], rows, { empty: "Nothing sent yet." })));
    });
  }
  const form = h("form", { class: "stack", "aria-label": "Create a webhook" },
    field("URL *", h("input", { name: "url", type: "url", required: true, maxlength: 2000, placeholder: "https://hooks.example.org/mlife" })),
    field("Events (comma separated; * for all)", h("input", { name: "events", required: true, value: "*" })),
    field("Description", h("input", { name: "description", maxlength: 2000 })),
    h("div", {}, h("button", { type: "submit" }, "Create webhook")));
  form.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
    const f = new FormData(form);
    const events = String(f.get("events") || "").split(",").map((x) => x.trim()).filter(Boolean);
    const w = await api("POST", "/api/msm/webhooks", { json: { url: f.get("url"), events, description: f.get("description") || "" } });
    secretBox.replaceChildren(h("p", {}, "Signing secret (shown once; deliveries carry webhook-signature v1,base64(HMAC-SHA256(secret, id.timestamp.body))): "),
      h("pre", { "aria-label": "signing secret" }, fmt(w.secret)));
    form.reset(); toast("Webhook created"); await rerender();
  }); });
  await rerender();
  return [h("h1", {}, "Webhooks"),
    h("p", { class: "muted" }, "MSM posts its events (model registered, deployments, feedback…) to these URLs, signed; a private address must be allow-listed by the operator (MLIFE_MSM_WEBHOOK_ALLOW_HOSTS)."),
    card("Create a webhook", form, secretBox), card("Webhooks", listBox), deliveriesBox];
}
