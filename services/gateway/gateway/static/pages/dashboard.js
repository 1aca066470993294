import { schemaEnum, api, card, chart, fmtDate, h, has, table, text, unavailable } from "/ui/lib.js";
import { alertsTable } from "/ui/pages/alerts.js";

const OPEN = ["new", "triaged", "in_progress", "regressed"];

async function section(title, needs, build) {
  if (!needs.every(([m, p]) => has(m, p))) return card(title, unavailable(title));
  try { return card(title, await build()); } catch (err) { return card(title, unavailable(title)); }
}

function isoWeek(d) {
  const day = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  day.setUTCDate(day.getUTCDate() - ((day.getUTCDay() + 6) % 7));
  return day.toISOString().slice(0, 10);
}

export async function dashboard() {
  const sections = await Promise.all([
    section("Firing alerts", [["GET", "/api/gateway/alerts"]], async () => {
      const firing = await api("GET", "/api/gateway/alerts", { query: { status: "firing", limit: 10 } });
      return h("div", { "data-testid": "firing-alerts" }, alertsTable(firing.items, () => window.dispatchEvent(new HashChangeEvent("hashchange"))),
        h("p", {}, h("a", { href: "#/alerts" }, `All alerts (${firing.total} firing)`)));
    }),
    section("Badcase burn-down by week", [["GET", "/api/bam/stats/weekly"]], async () => {
      const w = await api("GET", "/api/bam/stats/weekly", { query: { weeks: 12 } });
      const labels = w.series.map((p) => p.week);
      return chart("line", labels, ["reported", "fixed", "regressed", "open"].map((k) => ({
        label: k, data: w.series.map((p) => p[k]), tension: 0.2 })), { label: "burn-down" });
    }),
    section("Open badcases by function and severity", [["GET", "/api/bam/stats"]], async () => {
      const parts = await Promise.all(OPEN.map((status) => api("GET", "/api/bam/stats",
        { query: { group_by: "function,severity", status, limit: 500 } })));
      const cells = new Map(); const functions = new Set(); const severities = schemaEnum("BadcaseRead", "severity").slice().reverse(); // worst first
      for (const p of parts) for (const g of p.groups) {
        const f = text(g.key.function); functions.add(f);
        const k = `${f}\u0000${g.key.severity}`; cells.set(k, (cells.get(k) || 0) + g.count);
      }
      const labels = [...functions];
      if (!labels.length) return h("p", { class: "muted" }, "No open badcases.");
      return chart("bar", labels, severities.map((s) => ({ label: s, data: labels.map((f) => cells.get(`${f}\u0000${s}`) || 0) })),
        { stacked: true, label: "open badcases" });
    }),
    section("Models deployed per week", [["GET", "/api/msm/deployments"]], async () => {
      const list = await api("GET", "/api/msm/deployments");
      const items = Array.isArray(list) ? list : list.items || [];
      const weeks = new Map();
      for (const d of items) { const w = isoWeek(new Date(d.created_at)); weeks.set(w, (weeks.get(w) || 0) + 1); }
      const labels = [...weeks.keys()].sort();
      if (!labels.length) return h("p", { class: "muted" }, "No deployments yet.");
      return chart("bar", labels, [{ label: "deployments", data: labels.map((w) => weeks.get(w)) }], { label: "deployments per week" });
    }),
    section("Recent tasks", [["GET", "/api/mtt/tasks"]], async () => {
      const list = await api("GET", "/api/mtt/tasks", { query: { limit: 10 } });
      const items = Array.isArray(list) ? list : list.items || [];
      return table([
        { label: "Task", render: (t) => h("a", { href: `#/tasks/${t.id}` }, text(t.name || t.id)) },
        { label: "Kind", key: "kind" }, { label: "Status", key: "status" },
        { label: "Created", render: (t) => fmtDate(t.created_at) }], items.slice(0, 10), { empty: "No tasks yet." });
    }),
  ]);
  const dead = [];
  for (const svc of ["bam", "dam", "mtt", "msm"]) {
    if (!has("GET", `/api/${svc}/dead-letters`)) { dead.push(h("li", {}, `${svc}: service not available`)); continue; }
    try {
      const rows = await api("GET", `/api/${svc}/dead-letters`, { query: { limit: 20 } });
      dead.push(h("li", {}, `${svc}: ${rows.length} dead-lettered`,
        rows.length ? table([{ label: "Consumer", key: "consumer" }, { label: "Subject", key: "subject" },
          { label: "Reason", key: "reason" }, { label: "Error", key: "error" }, { label: "When", render: (r) => fmtDate(r.created_at) }], rows) : null));
    } catch { dead.push(h("li", {}, `${svc}: service not available`)); }
  }
  return [h("h1", {}, "Dashboard"), h("div", { class: "grid" }, sections),
    h("div", { class: "spacer" }), card("Dead-lettered events", h("ul", {}, dead), h("p", {}, h("a", { href: "#/dead-letters" }, "All dead letters")))];
}
