// The API docs page (/docs): Swagger UI over the gateway's merged OpenAPI. Same origin, so "Try it out" uses
// the session cookie of a logged-in user; a write also needs the X-CSRF-Token header, which the UI's session gives.
window.ui = window.SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [window.SwaggerUIBundle.presets.apis],
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
