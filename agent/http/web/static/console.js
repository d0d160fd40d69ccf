// Live rows without a reload: fetch the table body the server renders, every few seconds.
(function () {
  "use strict";
  var body = document.getElementById("rows");
  if (!body || !body.dataset.live) { return; }
  var every = (parseFloat(body.dataset.every) || 3) * 1000;
  var status = document.getElementById("live-status");
  var count = document.getElementById("open-count");
  function known() {
    var ids = {};
    Array.prototype.forEach.call(body.querySelectorAll("tr[id]"), function (tr) { ids[tr.id] = true; });
    return ids;
  }
  function refresh() {
    fetch(body.dataset.live, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (data) {
        var before = known();
        body.innerHTML = data.html;
        Array.prototype.forEach.call(body.querySelectorAll("tr[id]"), function (tr) {
          if (!before[tr.id]) { tr.classList.add("fresh"); }
        });
        if (count) { count.textContent = String(data.open); }
        if (status) { status.textContent = "updated " + new Date().toLocaleTimeString(); }
      })
      .catch(function (error) {
        if (status) { status.textContent = "not updated: " + error.message; }
      })
      .then(function () { window.setTimeout(refresh, every); });
  }
  window.setTimeout(refresh, every);
})();
