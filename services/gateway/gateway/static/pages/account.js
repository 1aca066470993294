import { roles, fmt, act, api, can, card, field, fmtDate, h, select, table, text, toast } from "/ui/lib.js";

const rerender = () => window.dispatchEvent(new HashChangeEvent("hashchange"));

export async function account() {
  const [me, tokens] = await Promise.all([api("GET", "/api/gateway/me"), api("GET", "/api/gateway/tokens")]);
  const secretBox = h("div", { role: "status" });
  const tokenForm = h("form", { class: "inline", "aria-label": "Create an API token" },
    field("Token name", h("input", { name: "name", required: true, maxlength: 100 })), h("button", { type: "submit" }, "Create token"));
  tokenForm.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
    const t = await api("POST", "/api/gateway/tokens", { json: { name: new FormData(tokenForm).get("name") } });
    tokenForm.reset();
    const list = await api("GET", "/api/gateway/tokens");
    tokenTable.replaceChildren(tokensTable(list));
    secretBox.replaceChildren(h("p", {}, "Your new token (shown once): "), h("pre", {}, t.token));
  }); });
  const tokenTable = h("div", {}, tokensTable(tokens));
  const pw = h("form", { class: "inline", "aria-label": "Change password" },
    field("Current password", h("input", { name: "current_password", type: "password", required: true, autocomplete: "current-password" })),
    field("New password (12+)", h("input", { name: "new_password", type: "password", required: true, minlength: 12, autocomplete: "new-password" })),
    h("button", { type: "submit" }, "Change password"));
  pw.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
    const f = new FormData(pw);
    await api("POST", "/api/gateway/me/password", { json: { current_password: f.get("current_password"), new_password: f.get("new_password") } });
    pw.reset(); toast("Password changed");
  }); });
  const who = h("dl", { class: "kv", "aria-label": "signed in as" }, h("dt", {}, "User"), h("dd", {}, text(me.username)),
    h("dt", {}, "Role"), h("dd", {}, text(me.role)), h("dt", {}, "Id"), h("dd", {}, text(me.id)));
  return [h("h1", {}, "Account"), card("Signed in as", who), card("API tokens (for the CLI and scripts)", tokenForm, secretBox, tokenTable),
    card("Password", pw), can("maintainer") ? await users() : null];
}

function tokensTable(tokens) {
  return table([{ label: "Name", key: "name" }, { label: "Created", render: (t) => fmtDate(t.created_at) },
    { label: "Last used", render: (t) => fmtDate(t.last_used_at) },
    { label: "", render: (t) => (t.revoked_at ? `revoked ${fmtDate(t.revoked_at)}` : h("button", { type: "button", class: "secondary",
      onclick: () => act(async () => { await api("DELETE", `/api/gateway/tokens/${t.id}`); toast("Token revoked"); rerender(); }) }, "Revoke")) }],
  tokens, { empty: "No tokens." });
}

async function users() {
  const list = await api("GET", "/api/gateway/users");
  const form = h("form", { class: "inline", "aria-label": "Create a user" },
    field("User name", h("input", { name: "username", required: true, pattern: "[A-Za-z0-9_.@\\-]+" })),
    field("Password (12+)", h("input", { name: "password", type: "password", required: true, minlength: 12, autocomplete: "new-password" })),
    field("Role", select("role", roles(), roles()[0])), h("button", { type: "submit" }, "Create user"));
  form.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
    const f = new FormData(form);
    await api("POST", "/api/gateway/users", { json: { username: f.get("username"), password: f.get("password"), role: f.get("role") } });
    toast("User created"); rerender();
  }); });
  return card("Users", form, table([{ label: "User", key: "username" },
    { label: "Role", render: (u) => { const s = select("role", roles(), u.role); s.setAttribute("aria-label", `role of ${u.username}`);
      s.addEventListener("change", () => act(async () => { await api("PATCH", `/api/gateway/users/${u.id}`, { json: { role: s.value } }); toast("Role changed"); }));
      return s; } },
    { label: "State", render: (u) => (u.disabled_at ? `disabled ${fmtDate(u.disabled_at)}` : "active") },
    { label: "", render: (u) => h("button", { type: "button", class: u.disabled_at ? "secondary" : "danger", onclick: () => act(async () => {
      await api("PATCH", `/api/gateway/users/${u.id}`, { json: { disabled: !u.disabled_at } }); toast("Saved"); rerender(); }) }, u.disabled_at ? "Enable" : "Disable") },
    { label: "", render: (u) => h("button", { type: "button", class: "secondary", title: "forget failed logins, so an address the login limit refuses may try again", "aria-label": `unlock ${u.username}`, onclick: () => act(async () => {
      const r = await api("POST", `/api/gateway/users/${u.id}/unlock`); toast(`Unlocked (${fmt(r.cleared_failures)} failed logins forgotten)`); }) }, "Unlock") },
    { label: "Created", render: (u) => fmtDate(u.created_at) }], list));
}
