// Marks the page as having JavaScript before it is drawn, as the NHS.UK frontend expects (its
// page template does this inline; a file keeps the Content-Security-Policy free of inline script).
document.body.className +=
  " js-enabled" + ("noModule" in HTMLScriptElement.prototype ? " nhsuk-frontend-supported" : "");
