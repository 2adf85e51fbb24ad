// cronhook dashboard: the little JavaScript it has. Pages work without it; it only shows
// timestamps in the viewer's local time (UTC stays in the tooltip). htmx does the live parts.
(function () {
  "use strict";
  var format = { year: "numeric", month: "short", day: "numeric",
                 hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short" };

  function localize(root) {
    var times = (root || document).querySelectorAll("time[data-local]");
    for (var i = 0; i < times.length; i++) {
      var element = times[i];
      var at = new Date(element.getAttribute("datetime"));
      if (!isNaN(at.getTime())) {
        element.textContent = at.toLocaleString(undefined, format);
      }
    }
  }

  document.addEventListener("DOMContentLoaded", function () { localize(document); });
  document.addEventListener("htmx:afterSettle", function (event) { localize(event.target); });
})();
