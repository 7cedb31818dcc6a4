// mwan web UI: refresh the live part of a page from its fragment URL.
(function () {
  "use strict";
  var main = document.getElementById("main");
  if (!main || !main.dataset.live) { return; }
  var url = main.dataset.live;
  function busy() {
    var a = document.activeElement;
    return a && (a.tagName === "INPUT" || a.tagName === "TEXTAREA" || a.tagName === "SELECT");
  }
  function refresh() {
    if (busy()) { return; }
    fetch(url, { credentials: "same-origin", cache: "no-store" }).then(function (r) {
      if (r.status === 401 || r.redirected) { window.location = "/login"; return null; }
      return r.ok ? r.text() : null;
    }).then(function (html) {
      if (html !== null && html !== undefined) { main.innerHTML = html; }
    }).catch(function () { /* daemon restarting: try again next tick */ });
  }
  setInterval(refresh, 1000);
})();
