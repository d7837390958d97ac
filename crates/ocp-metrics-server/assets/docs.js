// Starts Swagger UI on the server's own OpenAPI document. It is a file of its own, not an inline
// script, so that the page works under a Content-Security-Policy of `script-src 'self'`.
"use strict";
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  // No request ever leaves for a third-party validator: the page must work offline.
  validatorUrl: null,
  // A token typed into "Authorize" lives in this page only, never in the browser's storage.
  persistAuthorization: false,
});
