// The dashboard's only script. Pages work without it; on an action's page it
// shows each vendor's delivery as it happens by polling the job's JSON, and
// reloads the page (rendered by the server) once the action has finished.
// Text is set with textContent only: nothing a vendor sent becomes markup.
"use strict";
(function () {
  var job = document.querySelector("[data-job]");
  if (!job || job.dataset.state === "done" || job.dataset.state === "failed") {
    return;
  }
  var state = document.getElementById("job-state");
  var bar = document.getElementById("job-progress");
  var table = document.getElementById("job-rows");
  var body = table.querySelector("tbody");

  var labels = ["Vendor", "Message", "Status", "Detail"];

  function cell(row, text) {
    var td = document.createElement("td");
    td.setAttribute("data-label", labels[row.cells.length]);
    td.textContent = text == null ? "" : String(text);
    row.appendChild(td);
    return td;
  }

  function show(data) {
    if (data.state === "waiting") {
      state.textContent = "Waiting for the previous action to finish…";
    } else {
      state.textContent = "Working… " + (data.total ? data.done + " of " + data.total : "");
    }
    if (bar && data.total) {
      bar.max = data.total;
      bar.value = data.done;
    }
    while (body.rows.length < data.rows.length) {
      var r = data.rows[body.rows.length];
      var tr = document.createElement("tr");
      cell(tr, r.vendor);
      cell(tr, r.what);
      var status = cell(tr, "");
      var pill = document.createElement("span");
      pill.className = "status status-" + String(r.status).replace(/[^a-z-]/g, "");
      pill.textContent = r.status;
      status.appendChild(pill);
      cell(tr, r.detail);
      body.appendChild(tr);
      table.hidden = false;
    }
  }

  function tick() {
    fetch(job.dataset.job, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.json(); })
      .then(function (data) {
        if (data.state === "done" || data.state === "failed") {
          window.location.reload();
          return;
        }
        show(data);
        window.setTimeout(tick, 200);
      })
      .catch(function () { window.setTimeout(tick, 1000); });
  }
  tick();
})();
