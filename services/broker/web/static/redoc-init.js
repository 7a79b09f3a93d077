// Starts ReDoc on /redoc: a file, because the page's Content-Security-Policy runs no inline
// script. ReDoc injects <style> elements; it gives them the nonce that this response's policy
// allows (from data-nonce, since browsers hide a nonce attribute's value from scripts).
(function () {
  "use strict";
  const root = document.getElementById("redoc");
  Redoc.init(
    root.dataset.openapiUrl,
    { nonce: root.dataset.nonce, hideDownloadButton: false, expandResponses: "200,201,202" },
    root,
  );
})();
