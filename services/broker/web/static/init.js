// Starts the NHS.UK frontend components on the page (header, skip link, error summary, password
// input, scrolling tables). Served from node_modules by the broker itself: no CDN.
import { initAll } from "/assets/nhsuk/nhsuk-frontend.min.js";

initAll();
