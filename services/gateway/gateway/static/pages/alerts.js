// Alerts (issue 14): what fires now and what resolved, acknowledged or resolved by hand; the rules per function
// that raise them, and a form for a new rule. Every text is set as text (lib.js `h`), never as HTML.
import { act, api, badge, can, card, field, fmt, fmtDate, h, has, schemaEnum, select, table, toast, unavailable } from "/ui/lib.js";

const rerender = () => window.dispatchEvent(new HashChangeEvent("hashchange"));
const list = (v) => String(v || "").split(",").map((x) => x.trim()).filter(Boolean);

// A firing alert's actions: acknowledge (engineers; no more repeats), resolve (maintainers).
function actions(a, onDone) {
  if (a.status === "resolved") return h("span", { class: "muted" }, a.resolved_by ? `by ${fmt(a.resolved_by)}` : "cleared");
  return h("span", { class: "row" },
    can("engineer") && !a.acknowledged_at ? h("button", { type: "button", class: "secondary small", "aria-label": `acknowledge ${fmt(a.summary)}`,
      onclick: () => act(async () => { await api("POST", `/api/gateway/alerts/${a.id}/acknowledge`); toast("Acknowledged: no more repeats"); onDone(); }) }, "Acknowledge") : null,
    a.acknowledged_at ? h("span", { class: "muted" }, `acknowledged by ${fmt(a.acknowledged_by)}`) : null,
    can("maintainer") ? h("button", { type: "button", class: "danger small", "aria-label": `resolve ${fmt(a.summary)}`,
      onclick: () => act(async () => { await api("POST", `/api/gateway/alerts/${a.id}/resolve`); toast("Resolved"); onDone(); }) }, "Resolve") : null);
}

export function alertsTable(items, onDone, showHistory) {
  return table([{ label: "Severity", render: (a) => badge(a.severity) }, { label: "Rule", key: "rule_name" },
    { label: "Summary", key: "summary" }, { label: "Group", render: (a) => h("code", {}, fmt(a.group_key) || "all") },
    { label: "Count", num: true, key: "count" }, { label: "Status", render: (a) => badge(a.status) },
    { label: "Started", render: (a) => fmtDate(a.started_at) },
    { label: "", render: (a) => h("span", { class: "row" }, actions(a, onDone),
      showHistory ? h("button", { type: "button", class: "secondary small", onclick: () => showHistory(a) }, "History") : null) }],
  items, { empty: "No alerts." });
}

function rulesTable(rules, onDone) {
  return table([{ label: "Name", key: "name" }, { label: "Kind", key: "kind" }, { label: "Function", render: (r) => fmt(r.function) || "all" },
    { label: "Parameters", render: (r) => fmt(r.params) }, { label: "Severity", render: (r) => badge(r.severity) },
    { label: "Group by", render: (r) => fmt(r.group_by) || "(one alert)" },
    { label: "Wait / repeat / resolve (s)", render: (r) => `${r.group_wait_seconds} / ${r.repeat_interval_seconds} / ${r.resolve_after_seconds}` },
    { label: "E-mail", render: (r) => h("span", {}, fmt(r.email_to), h("div", { class: "muted" }, fmt(r.email))) },
    { label: "", render: (r) => (can("engineer") ? h("button", { type: "button", class: "secondary small", "aria-label": `${r.enabled ? "disable" : "enable"} ${fmt(r.name)}`,
      onclick: () => act(async () => { await api("PATCH", `/api/gateway/alert-rules/${r.id}`, { json: { enabled: !r.enabled } }); toast(r.enabled ? "Rule disabled" : "Rule enabled"); onDone(); }) },
    r.enabled ? "Disable" : "Enable") : badge(r.enabled ? "active" : "disabled")) }],
  rules, { empty: "No alert rules yet." });
}

const PARAMS_HINT = {
  critical_badcase: '{"min_priority": 40}', badcase_frequency: '{"threshold": 10, "window_seconds": 86400}',
  badcase_surge: '{"window_seconds": 3600, "baseline_windows": 24, "factor": 3, "min_count": 10}',
  regression: '{"min_regressed": 1}', deployment: '{"events": ["deployment.blocked", "deployment.failed"]}',
  failure: '{"threshold": 1, "window_seconds": 300}',
};

function ruleForm(onDone) {
  const kinds = schemaEnum("AlertRuleCreate", "kind");
  const params = h("textarea", { name: "params", rows: 2, placeholder: PARAMS_HINT[kinds[0]] || "{}" });
  const kind = select("kind", kinds, kinds[0]);
  kind.addEventListener("change", () => { params.placeholder = PARAMS_HINT[kind.value] || "{}"; });
  const number = (name, value) => h("input", { name, type: "number", min: 0, value });
  const form = h("form", { class: "stack", "aria-label": "Create an alert rule" },
    field("Name *", h("input", { name: "name", required: true, maxlength: 200 })), field("Kind", kind),
    field("Function (empty: every function)", h("input", { name: "function", maxlength: 100 })),
    field("Parameters (JSON; empty: the kind's defaults)", params),
    field("Severity", select("severity", schemaEnum("AlertRuleCreate", "severity"), "warning")),
    field("Group by (labels, comma separated; empty: the kind's default)", h("input", { name: "group_by", placeholder: "function, model_version" })),
    h("div", { class: "row" }, field("Group wait (s)", number("group_wait_seconds", 30)), field("Repeat interval (s)", number("repeat_interval_seconds", 14400)),
      field("Resolve after quiet (s; empty: the kind's window)", h("input", { name: "resolve_after_seconds", type: "number", min: 1 }))),
    field("E-mail recipients (comma separated)", h("input", { name: "email_to", placeholder: "oncall@example.org" })),
    h("div", {}, h("button", { type: "submit" }, "Create rule")));
  form.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
    const f = new FormData(form);
    let parsed = {};
    try { parsed = f.get("params") ? JSON.parse(String(f.get("params"))) : {}; } catch { throw new Error("Parameters: not valid JSON"); }
    const body = { name: f.get("name"), kind: f.get("kind"), function: f.get("function") || null, params: parsed,
      severity: f.get("severity"), group_wait_seconds: Number(f.get("group_wait_seconds")),
      repeat_interval_seconds: Number(f.get("repeat_interval_seconds")), email_to: list(f.get("email_to")) };
    if (f.get("group_by")) body.group_by = list(f.get("group_by"));
    if (f.get("resolve_after_seconds")) body.resolve_after_seconds = Number(f.get("resolve_after_seconds"));
    await api("POST", "/api/gateway/alert-rules", { json: body });
    form.reset(); toast("Alert rule created"); onDone();
  }); });
  return form;
}

export async function alerts(queryString) {
  if (!has("GET", "/api/gateway/alerts")) return [h("h1", {}, "Alerts"), unavailable("Alerts")];
  const query = new URLSearchParams(queryString || "");
  const status = query.get("status") || "firing"; const fn = query.get("function") || "";
  const filter = h("form", { class: "inline", role: "search", "aria-label": "Filter alerts" },
    field("Status", select("status", ["firing", "resolved", "all"], status)), field("Function", h("input", { name: "function", value: fn })),
    h("button", { type: "submit" }, "Filter"));
  filter.addEventListener("submit", (e) => { e.preventDefault(); const f = new FormData(filter);
    location.hash = `#/alerts?${new URLSearchParams({ status: String(f.get("status")), function: String(f.get("function") || "") })}`; });
  const historyBox = h("div");
  async function showHistory(a) {
    await act(async () => {
      const detail = await api("GET", `/api/gateway/alerts/${a.id}`);
      historyBox.replaceChildren(h("section", { class: "card", "data-alert": detail.id }, h("h2", {}, `Notifications of ${fmt(detail.summary)}`),
        table([{ label: "Kind", render: (n) => badge(n.kind) }, { label: "When", render: (n) => fmtDate(n.created_at) },
          { label: "To", render: (n) => fmt(n.recipients) }, { label: "E-mail", render: (n) => badge(n.email_status) },
          { label: "Attempts", num: true, key: "attempts" }, { label: "Error", key: "last_error" }, { label: "Sent", render: (n) => fmtDate(n.sent_at) }],
        detail.notifications, { empty: "Nothing sent yet (pending alerts wait their group wait)." })));
    });
  }
  const [page, rules] = await Promise.all([api("GET", "/api/gateway/alerts", { query: { status, function: fn, limit: 200 } }),
    api("GET", "/api/gateway/alert-rules")]);
  return [h("h1", {}, "Alerts"),
    h("p", { class: "muted" }, "Rules per function raise alerts from the platform's events; events of one group (e.g. one model version) make one alert, which fires after its group wait, repeats at most once per repeat interval until acknowledged, and resolves itself after its quiet time. Firing and resolution go out by e-mail and to webhooks subscribed to alert.*."),
    card("Filter", filter), card(`Alerts: ${page.total}`, alertsTable(page.items, rerender, showHistory)), historyBox,
    card("Rules", rulesTable(rules, rerender)), can("engineer") ? card("Create an alert rule", ruleForm(rerender)) : null];
}
