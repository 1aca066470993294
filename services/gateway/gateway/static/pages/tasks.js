import { paramEnum, act, api, badcasesOf, badge, can, card, chart, field, fmtDate, h, has, link, select, SET_NAMES, short, table, text, toast, unavailable } from "/ui/lib.js";

const list = (r) => (Array.isArray(r) ? r : r.items || []);

export async function tasks() {
  if (!has("GET", "/api/mtt/tasks")) return [h("h1", {}, "Tasks"), unavailable("MTT")];
  const items = list(await api("GET", "/api/mtt/tasks"));
  let create = null;
  if (can("engineer") && has("POST", "/api/mtt/tasks")) {
    create = h("form", { class: "stack", "aria-label": "Create a task" },
      field("Name", h("input", { name: "name", required: true })), field("Kind", select("kind", paramEnum("GET", "/api/mtt/tasks", "kind"), "test")),
      field("Dataset id *", h("input", { name: "dataset_id", required: true })), field("Model name (test: its latest version)", h("input", { name: "model_name" })),
      field("Function (default: the dataset's or the model's)", h("input", { name: "function" })),
      field("Command (empty: built-in evaluator)", h("input", { name: "command" })), h("label", { class: "check" }, h("input", { type: "checkbox", name: "run", value: "1" }), "Run at once"),
      h("div", {}, h("button", { type: "submit" }, "Create task")));
    create.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
      const f = new FormData(create);
      const body = { kind: f.get("kind"), name: f.get("name"), datasets: [{ dataset_id: f.get("dataset_id") }], run: f.get("run") === "1" };
      for (const k of ["model_name", "command", "function"]) if (f.get(k)) body[k] = f.get(k);
      const t = await api("POST", "/api/mtt/tasks", { json: body }); toast("Task created"); location.hash = `#/tasks/${t.id}`;
    }); });
  }
  return [h("h1", {}, "Tasks"), create ? card("Create a task", create) : null,
    card("Tasks", table([{ label: "Task", render: (t) => h("a", { href: `#/tasks/${t.id}` }, text(t.name || t.id)) },
      { label: "Kind", render: (t) => text(t.kind ?? t.type) }, { label: "Function", render: (t) => text(t.function) },
      { label: "Status", render: (t) => badge(t.status) },
      { label: "Created", render: (t) => fmtDate(t.created_at) }], items, { empty: "No tasks yet." }))];
}

export async function taskDetail(id) {
  const t = await api("GET", `/api/mtt/tasks/${id}`);
  const report = has("GET", "/api/mtt/tasks/{task_id}/report") || has("GET", "/api/mtt/tasks/{id}/report")
    ? await api("GET", `/api/mtt/tasks/${id}/report`).catch(() => null) : null;
  const metrics = (report && report.metrics) || t.metrics || {};
  const metricRows = Object.entries(metrics).filter(([, v]) => typeof v === "number");
  const cm = report && report.classes && report.confusion && report.confusion.length
    ? { labels: report.classes, counts: report.confusion } : null;
  let cmView = h("p", { class: "muted" }, "No confusion matrix.");
  if (cm) {
    cmView = h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "truth \\ predicted"), cm.labels.map((l) => h("th", { class: "num" }, text(l))))),
      h("tbody", {}, cm.counts.map((row, i) => h("tr", {}, h("th", { scope: "row" }, text(cm.labels[i])), row.map((c) => h("td", { class: "num" }, String(c)))))));
  }
  const logBox = h("pre", { "aria-live": "polite" }, "");
  let timer = null; let logOffset = 0;
  async function tail() {
    try {
      const r = await api("GET", `/api/mtt/tasks/${id}/logs`, { query: { offset: logOffset } });
      logBox.textContent += r.text || ""; logOffset = r.next_offset ?? logOffset;
      if (r.complete) return;
    } catch { logBox.textContent = "(no logs)"; }
    if (document.body.contains(logBox)) timer = setTimeout(tail, 3000);
  }
  if (has("GET", "/api/mtt/tasks/{task_id}/logs") || has("GET", "/api/mtt/tasks/{id}/logs")) tail(); else logBox.textContent = "(logs not available)";
  const run = can("engineer") ? h("button", { type: "button", onclick: () => act(async () => {
    await api("POST", `/api/mtt/tasks/${id}/run`); toast("Task started"); if (timer) clearTimeout(timer);
    window.dispatchEvent(new HashChangeEvent("hashchange"));
  }) }, "Run") : null;
  // A queued task ends at once; a running one is killed by its runner. Finished tasks have nothing to cancel.
  const cancel = can("engineer") && has("POST", "/api/mtt/tasks/{task_id}/cancel") && ["draft", "ready", "queued", "running"].includes(t.status)
    ? h("button", { type: "button", class: "danger", onclick: () => act(async () => {
      await api("POST", `/api/mtt/tasks/${id}/cancel`); toast("Task cancelled"); if (timer) clearTimeout(timer);
      window.dispatchEvent(new HashChangeEvent("hashchange"));
    }) }, "Cancel") : null;
  return [h("p", {}, h("a", { href: "#/tasks" }, "← Tasks")), h("h1", {}, `Task: ${text(t.name || t.id)}`),
    card("Task", h("dl", { class: "kv" }, ...Object.entries(t).filter(([, v]) => typeof v !== "object" || v === null)
      .flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, k === "set_kind" ? text(SET_NAMES[v] ?? v) : text(v))])),
      h("p", { class: "row" }, link(badcasesOf({ task_id: t.id }), "Badcases of this task"),
        t.function ? link(badcasesOf({ function: t.function }), `Badcases of function ${text(t.function)}`) : null,
        t.model && t.model.name ? link(`#/models/${encodeURIComponent(t.model.name)}`, `Model ${text(t.model.name)} v${text(t.model.version)}`) : null,
        (t.datasets || []).map((d) => h("span", { class: "muted" }, `${text(d.purpose)} dataset ${short(d.dataset_id)}${d.is_badcase_test_set ? " (badcase test set)" : ""}`))),
      (report && report.mlflow_url) ? h("p", {}, h("a", { href: report.mlflow_url, rel: "noopener noreferrer", target: "_blank" }, "Open the MLflow run")) : null,
      h("p", { class: "row" }, run, cancel)),
    h("div", { class: "grid" }, card("Metrics", metricRows.length ? chart("bar", metricRows.map((m) => m[0]), [{ label: "value", data: metricRows.map((m) => m[1]) }], { label: "metrics" }) : h("p", { class: "muted" }, "No metrics yet.")),
      card("Confusion matrix", cmView)), h("div", { class: "spacer" }), card("Log (live tail)", logBox)];
}
