// The API docs page (/docs): Swagger UI over the gateway's merged OpenAPI. Same origin, so "Try it out" uses
// the session cookie of a logged-in user; a write also needs the X-CSRF-Token header, which the UI's session gives.

// Every operation in the page, whatever their number. Swagger UI (5.3x) virtualises its operation list once it
// holds 150 rows (tag headings + operations): only the rows in view, plus three, are in the page and the others
// are mounted on scroll, so find-in-page, a reader of the page and a test saw about a dozen of the merged
// OpenAPI's operations. This replaces its "operations" component by the one it renders below that size.
function allOperations({ React }) {
  const h = React.createElement;
  const operations = ({ specSelectors, getComponent, oas3Selectors, layoutSelectors, layoutActions, getConfigs }) => {
    const tagged = specSelectors.taggedOperations();
    if (tagged.size === 0) return h("h3", null, "No operations defined in spec!");
    const methods = specSelectors.validOperationMethods();
    const OperationTag = getComponent("OperationTag");
    const OperationContainer = getComponent("OperationContainer", true);
    const tagProps = { oas3Selectors, layoutSelectors, layoutActions, getConfigs, getComponent, specUrl: specSelectors.url() };
    const opsOf = (tagObj, tag) => tagObj.get("operations")
      .filter((op) => methods.indexOf(op.get("method")) !== -1)
      .map((op) => h(OperationContainer, { key: `${op.get("path")}-${op.get("method")}`, specPath: op.get("specPath"),
        op, path: op.get("path"), method: op.get("method"), tag }))
      .toArray();
    const sections = tagged.map((tagObj, tag) => h(OperationTag, { key: `operation-${tag}`, tagObj, tag, ...tagProps },
      h("div", { className: "operation-tag-content" }, opsOf(tagObj, tag))));
    return h("div", null, sections.valueSeq().toArray());
  };
  return { components: { operations } };
}

window.ui = window.SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [window.SwaggerUIBundle.presets.apis],
  plugins: [allOperations],
  layout: "BaseLayout",
  showExtensions: true,
  validatorUrl: null, // no badge from validator.swagger.io: the page calls no other host
  requestInterceptor: async (req) => {
    if (req.method && req.method.toUpperCase() !== "GET" && !req.headers["X-CSRF-Token"]) {
      try {
        const r = await fetch("/api/gateway/session", { credentials: "same-origin" });
        const s = await r.json();
        if (s.authenticated && s.user && s.user.csrf_token) req.headers["X-CSRF-Token"] = s.user.csrf_token;
      } catch { /* not logged in: the API answers 401 */ }
    }
    return req;
  },
});
