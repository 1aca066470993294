import { errorText, paramEnum, upload, act, api, badcasesOf, badge, can, card, chart, field, fmtDate, h, has, link, select, SET_NAMES, short, table, text, toast, unavailable } from "/ui/lib.js";

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

// Change what a task runs (a draft whose code is set becomes ready).
function editForm(t) {
  const form = h("form", { class: "inline", "aria-label": "Edit the task" },
    field("Name", h("input", { name: "name", value: text(t.name), maxlength: 200 })), field("Function", h("input", { name: "function", value: text(t.function) })),
    field("Command", h("input", { name: "command", value: text(t.command) })), field("Code location", h("input", { name: "code_location", value: text(t.code_location) })),
    field("Timeout (s)", h("input", { name: "timeout_seconds", type: "number", min: 1, step: "any", value: t.timeout_seconds ?? "" })),
    h("button", { type: "submit" }, "Save"));
  form.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
    const f = new FormData(form); const body = {};
    for (const k of ["name", "function", "command", "code_location"]) if (String(f.get(k)) !== text(t[k])) body[k] = f.get(k) || null;
    if (f.get("timeout_seconds") !== "") body.timeout_seconds = Number(f.get("timeout_seconds"));
    await api("PATCH", `/api/mtt/tasks/${t.id}`, { json: body }); toast("Task saved"); window.dispatchEvent(new HashChangeEvent("hashchange"));
  }); });
  return form;
}

// What code run outside a runner sends back: its code (.zip/.tar.gz), a model file, result files, log text.
function uploadsCard(t) {
  const out = h("div", { role: "status" });
  const done = (what) => (r) => { out.replaceChildren(h("p", { class: "okc", "data-uploaded": what }, `${what} stored`, r && r.key ? ` (${r.key})` : "")); };
  const fail = (err) => out.replaceChildren(h("p", { class: "error", role: "alert" }, errorText(err)));
  const fileOf = (form) => new FormData(form).get("file");
  const one = (label, extra, send) => {
    const form = h("form", { class: "inline", "aria-label": `Upload ${label}` }, field(label, h("input", { name: "file", type: "file", required: true })),
      extra, h("button", { type: "submit", class: "secondary" }, "Upload"));
    form.addEventListener("submit", (e) => { e.preventDefault(); send(form).then(done(label)).catch(fail); });
    return form;
  };
  const progress = () => {};
  return card("Uploads",
    // the code changes the task (its code location; a draft becomes ready): the page shows it anew
    one("code (.zip or .tar.gz)", null, (f) => upload(`/api/mtt/tasks/${t.id}/code`, {}, fileOf(f), progress)
      .then((task) => { toast(`Code stored: the task is ${text(task.status)}`); window.dispatchEvent(new HashChangeEvent("hashchange")); })),
    one("a model", field("Format", h("input", { name: "format", placeholder: "onnx" })), (f) => {
      const file = fileOf(f); const format = new FormData(f).get("format");
      return upload(`/api/mtt/tasks/${t.id}/model`, { name: file.name, format }, file, progress);
    }),
    one("a result file", null, (f) => { const file = fileOf(f); return upload(`/api/mtt/tasks/${t.id}/results`, { name: file.name }, file, progress); }),
    one("log text", null, (f) => upload(`/api/mtt/tasks/${t.id}/logs`, {}, fileOf(f), progress)), out);
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
      h("p", { class: "row" }, run, cancel), can("engineer") && has("PATCH", "/api/mtt/tasks/{task_id}") ? editForm(t) : null),
    can("engineer") && has("POST", "/api/mtt/tasks/{task_id}/code") ? uploadsCard(t) : null,
    h("div", { class: "grid" }, card("Metrics", metricRows.length ? chart("bar", metricRows.map((m) => m[0]), [{ label: "value", data: metricRows.map((m) => m[1]) }], { label: "metrics" }) : h("p", { class: "muted" }, "No metrics yet.")),
      card("Confusion matrix", cmView)), h("div", { class: "spacer" }), card("Log (live tail)", logBox)];
}
