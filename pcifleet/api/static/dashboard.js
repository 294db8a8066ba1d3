// Refresh the page's content in place every few seconds, so the fleet view
// stays current without a reload (no scroll jump, no flash). A session that
// ended (the server answers with the login page) goes back to the login page.
(function () {
  "use strict";
  var seconds = Number(document.body.dataset.refresh || 0);
  var content = document.getElementById("content");
  var stamp = document.getElementById("updated");
  if (!seconds || !content || !stamp) {
    return; // the login page: nothing to refresh
  }
  function show(when) {
    stamp.textContent = "updated " + when.toLocaleTimeString();
  }
  function refresh() {
    fetch(window.location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (resp) {
        if (resp.redirected && resp.url.indexOf("/dashboard/login") !== -1) {
          window.location.assign(resp.url);
          return null;
        }
        return resp.ok ? resp.text() : null;
      })
      .then(function (html) {
        if (html === null) {
          return;
        }
        var page = new DOMParser().parseFromString(html, "text/html");
        var fresh = page.getElementById("content");
        if (fresh) {
          content.innerHTML = fresh.innerHTML;
          show(new Date());
        }
      })
      .catch(function () { stamp.textContent = "not updated: the API does not answer"; });
  }
  show(new Date());
  window.setInterval(refresh, seconds * 1000);
})();
