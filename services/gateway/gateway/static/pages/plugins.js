// Plugins: what each service found at its seams (converters, cleaners, evaluators, …), built-in or from an outside
// package, with its state. A plugin that failed to load, targets another plugin API or lost its package is listed
// with the reason; the service runs on without it (docs/plugins.md).
import { api, badge, card, fmt, fmtDate, h, has, orDash, table, unavailable } from "/ui/lib.js";

const SERVICES = ["bam", "dam", "mtt", "msm"];

function origin(p) {
  const dist = p.distribution ? `${p.distribution}${p.version ? ` ${p.version}` : ""}` : "";
  return h("span", {}, p.builtin ? h("span", { class: "badge builtin" }, "built-in") : h("span", { class: "badge outside" }, "outside"),
    " ", dist, h("div", { class: "muted" }, h("code", {}, p.entry_point)));
}

function message(p) {
  if (p.state === "absent") return h("span", {}, fmt(p.error), p.last_seen_at ? h("div", { class: "muted" }, `last active ${fmtDate(p.last_seen_at)}`) : null);
  return p.error ? h("span", { class: "error" }, p.error) : h("span", { class: "muted" }, "\u2014");
}

function pluginsTable(list) {
  return table([{ label: "Seam", key: "seam" }, { label: "Name", render: (p) => h("code", {}, p.name) },
    { label: "State", render: (p) => badge(p.state) }, { label: "Description", render: (p) => orDash(p.description) },
    { label: "Message", render: message }, { label: "Package", render: origin },
    { label: "Plugin API", render: (p) => orDash(p.api) }],
  list, { empty: "No plugins: this service has no seams." });
}

async function section(svc) {
  const title = svc.toUpperCase();
  if (!has("GET", `/api/${svc}/plugins`)) return card(title, unavailable(title));
  let listing;
  try { listing = await api("GET", `/api/${svc}/plugins`); } catch { return card(title, unavailable(title)); }
  const seams = listing.seams.map((s) => h("li", {}, h("strong", {}, s.name), ` (entry points `, h("code", {}, s.group), `): ${s.summary}`));
  const notActive = listing.plugins.filter((p) => p.state !== "active").length;
  const out = h("section", { class: "card", "data-service": svc },
    h("h2", {}, `${title}: ${listing.plugins.length} plugin(s)${notActive ? `, ${notActive} not active` : ""}`),
    h("p", { class: "muted" }, `Plugin API ${listing.api_version}.`),
    seams.length ? h("ul", {}, seams) : null, pluginsTable(listing.plugins));
  for (const [row, p] of [...out.querySelectorAll("tbody tr")].map((r, i) => [r, listing.plugins[i]])) {
    row.dataset.plugin = `${p.seam}/${p.name}`; row.dataset.state = p.state;
  }
  return out;
}

export async function pluginsPage() {
  const sections = await Promise.all(SERVICES.map(section));
  return [h("h1", {}, "Plugins"),
    h("p", { class: "muted" }, "Each service finds its plugins through Python entry points when it starts: a package installed next to MLife adds a format, a data check, an evaluator, a runner or a deployment target. ",
      "A plugin that fails to import, lacks a dependency or supports another plugin API is shown with why, and the service runs without it; one whose package was removed is ",
      badge("absent"), ". Install or remove a package, then restart the service. ",
      h("a", { href: "/docs", target: "_blank", rel: "noopener" }, "API docs"), " · docs/plugins.md tells how to write one."),
    ...sections];
}
