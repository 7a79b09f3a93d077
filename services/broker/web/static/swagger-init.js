// Starts Swagger UI on /docs: a file, because the page's Content-Security-Policy runs no inline
// script. The OpenAPI document's address comes from the page; nothing is fetched from elsewhere
// (validatorUrl null: no badge from the public validator).
(function () {
  "use strict";
  const root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    persistAuthorization: false,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
  });
})();
