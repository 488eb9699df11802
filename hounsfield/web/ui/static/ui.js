// Show the archive's refusal of an action (its JSON "error") in the flash line.
(function () {
  function flash(text, kind) {
    var el = document.getElementById("flash");
    if (!el) return;
    el.textContent = text;
    el.className = "flash" + (text ? " " + kind : "");
  }
  document.addEventListener("htmx:beforeRequest", function (event) {
    if (event.detail.requestConfig && event.detail.requestConfig.verb !== "get") flash("", "");
  });
  document.addEventListener("htmx:responseError", function (event) {
    var text = event.detail.xhr.responseText;
    try { text = JSON.parse(text).error || text; } catch (e) { /* not JSON: as it came */ }
    flash(text || ("HTTP " + event.detail.xhr.status), "error");
  });
  document.addEventListener("htmx:sendError", function () {
    flash("The node did not answer.", "error");
  });
})();
