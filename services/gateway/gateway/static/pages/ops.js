// Operations: events no handler could apply (dead letters, per service). Webhooks: pages/webhooks.js.
import { act, api, badge, can, card, field, fmt, fmtDate, h, state, table, toast, unavailable } from "/ui/lib.js";

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
