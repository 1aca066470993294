import { api, act, destroyCharts, errorText, h, loadApi, state, toast } from "/ui/lib.js";
import { dashboard } from "/ui/pages/dashboard.js";
import { badcaseDetail, badcases } from "/ui/pages/badcases.js";
import { data, documentDetail } from "/ui/pages/data.js";
import { taskDetail, tasks } from "/ui/pages/tasks.js";
import { deploymentDetail, deployments, modelDetail, models } from "/ui/pages/models.js";
import { account } from "/ui/pages/account.js";
import { datasetDetail } from "/ui/pages/datasets.js";
import { deadLetters } from "/ui/pages/ops.js";
import { webhooks } from "/ui/pages/webhooks.js";
import { fileDetail, files } from "/ui/pages/files.js";
import { labellingDetail } from "/ui/pages/labelling.js";
import { alerts } from "/ui/pages/alerts.js";
import { subscribers } from "/ui/pages/subscribers.js";
import { pluginsPage } from "/ui/pages/plugins.js";

const main = document.getElementById("main");
const routes = [
  [/^#\/dashboard$/, dashboard], [/^#\/badcases$/, badcases], [/^#\/badcases\/([\w-]+)$/, badcaseDetail],
  [/^#\/data$/, data], [/^#\/data\/documents\/([\w-]+)$/, documentDetail], [/^#\/data\/datasets\/([\w-]+)$/, datasetDetail],
  [/^#\/data\/files$/, files], [/^#\/data\/files\/([0-9a-f]{32})$/, fileDetail], [/^#\/data\/labelling\/([\w-]+)$/, labellingDetail],
  [/^#\/tasks$/, tasks], [/^#\/tasks\/([\w-]+)$/, taskDetail],
  [/^#\/models$/, models], [/^#\/models\/([^/]+)$/, modelDetail],
  [/^#\/deployments$/, deployments], [/^#\/deployments\/([\w-]+)$/, deploymentDetail],
  [/^#\/account$/, account], [/^#\/dead-letters$/, deadLetters], [/^#\/webhooks$/, webhooks],
  [/^#\/alerts$/, alerts], [/^#\/subscribers$/, subscribers], [/^#\/plugins$/, pluginsPage],
];

function loginPage() {
  document.getElementById("top").hidden = true;
  const message = h("p", { class: "error", role: "alert" });
  const form = h("form", { class: "card login", "aria-label": "Log in" },
    h("h1", {}, "MLife — log in"),
    h("label", {}, "User name", h("input", { name: "username", autocomplete: "username", required: true, autofocus: true })),
    h("label", {}, "Password", h("input", { name: "password", type: "password", autocomplete: "current-password", required: true })),
    h("p", {}, h("button", { type: "submit" }, "Log in")), message);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = new FormData(form);
    try {
      const me = await api("POST", "/api/gateway/login", { json: { username: f.get("username"), password: f.get("password") } });
      state.me = me; state.csrf = me.csrf_token;
      await start();
    } catch (err) { message.textContent = errorText(err); }
  });
  main.replaceChildren(form);
  form.querySelector("input").focus();
}

async function render() {
  destroyCharts();
  const hash = location.hash || "#/dashboard";
  for (const a of document.querySelectorAll("header nav a")) {
    a.toggleAttribute("aria-current", hash.startsWith(a.getAttribute("href")));
    if (a.hasAttribute("aria-current")) a.setAttribute("aria-current", "page");
  }
  // `#/badcases?task_id=…`: the path picks the page, the query (raw, for URLSearchParams) comes last.
  const cut = hash.indexOf("?");
  const path = cut < 0 ? hash : hash.slice(0, cut);
  const query = cut < 0 ? "" : hash.slice(cut + 1);
  for (const [rx, page] of routes) {
    const m = path.match(rx);
    if (m) {
      main.replaceChildren(h("p", { class: "muted" }, "Loading…"));
      try {
        const content = await page(...m.slice(1).map(decodeURIComponent), query);
        // A page leaves out what a role may not use as null: never rendered (replaceChildren would write "null").
        main.replaceChildren(...[content].flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false && c !== ""));
      } catch (err) {
        main.replaceChildren(h("p", { class: "error", role: "alert" }, errorText(err)));
      }
      main.focus({ preventScroll: true });
      return;
    }
  }
  location.hash = "#/dashboard";
}

async function start() {
  document.getElementById("top").hidden = false;
  document.getElementById("who").textContent = `${state.me.username} (${state.me.role})`;
  await loadApi();
  if (!location.hash || location.hash === "#/login") location.hash = "#/dashboard"; else await render();
}

window.addEventListener("hashchange", () => { if (state.me) render(); });
window.addEventListener("mlife:logged-out", () => { state.me = null; state.csrf = null; loginPage(); });
document.getElementById("logout").addEventListener("click", () => act(async () => {
  await api("POST", "/api/gateway/logout");
  state.me = null; state.csrf = null; toast("Logged out"); loginPage();
}));

(async () => {
  try {
    const s = await api("GET", "/api/gateway/session");
    if (s.authenticated) { state.me = s.user; state.csrf = s.user.csrf_token; await start(); return; }
  } catch { /* not logged in */ }
  loginPage();
})();
