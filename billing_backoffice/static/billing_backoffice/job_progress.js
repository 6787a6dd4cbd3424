/* A staff job's progress page (templates/admin/staff_jobs/progress.html, issue 10): poll the job's
   JSON status once a second, move the <progress> bar and its text, and reload the page once the
   job is finished (the server then renders the summary). No library, nothing from outside. */
(function () {
  "use strict";
  var box = document.getElementById("job-progress");
  if (!box || box.getAttribute("data-finished") === "true" || !window.fetch) {
    return;
  }
  var url = box.getAttribute("data-status-url");
  var bar = document.getElementById("job-bar");
  var percent = document.getElementById("job-percent");
  var text = document.getElementById("job-text");
  var INTERVAL = 1000;

  function show(status) {
    if (status.total) {
      bar.max = status.total;
      bar.value = status.done;
    }
    percent.textContent = status.percent === null ? "" : status.percent + "%";
    text.textContent = status.text;
    box.setAttribute("data-state", status.state);
    if (status.finished) {
      window.location.reload();
      return;
    }
    window.setTimeout(poll, INTERVAL);
  }

  function poll() {
    window.fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("status " + response.status);
        }
        return response.json();
      })
      .then(show)
      .catch(function () {
        text.textContent = "Could not read the job's progress; trying again.";
        window.setTimeout(poll, INTERVAL * 5);
      });
  }

  window.setTimeout(poll, INTERVAL);
})();
