// fpverify dashboard: live tables, the trend chart, print button. No inline script (CSP).
// Every word the chart shows comes translated in #trend-data (routes/overview.py).
(function () {
  "use strict";

  function setBars(root) {
    root.querySelectorAll(".bar > span[data-w]").forEach(function (el) {
      el.style.width = Math.min(100, parseFloat(el.dataset.w) || 0) + "%";
    });
  }

  // Re-fetch the page and swap every [data-live] block, unless the user is typing in one.
  function refreshLive() {
    var live = document.querySelectorAll("[data-live][id]");
    if (!live.length || document.hidden) return;
    var active = document.activeElement;
    for (var i = 0; i < live.length; i++) {
      if (live[i].contains(active) && active !== document.body) return;
    }
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
      .then(function (r) { return r.ok && !r.redirected ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        live.forEach(function (el) {
          var fresh = doc.getElementById(el.id);
          if (fresh && fresh.innerHTML !== el.innerHTML) {
            el.innerHTML = fresh.innerHTML;
            setBars(el);
          }
        });
      })
      .catch(function () { /* offline for a moment: try again next tick */ });
  }

  function drawTrend() {
    var canvas = document.getElementById("trend");
    var data = document.getElementById("trend-data");
    if (!canvas || !data || typeof Chart === "undefined") return;
    var d = JSON.parse(data.textContent);
    var datasets = d.outcomes.map(function (o) {
      return { type: "bar", label: o.outcome, data: o.data, backgroundColor: o.colour, stack: "n", yAxisID: "y" };
    });
    datasets.push({ type: "line", label: d.text.rate, data: d.failure_rate, borderColor: "#111",
      backgroundColor: "#111", yAxisID: "rate", tension: 0.2, spanGaps: true, pointRadius: 2 });
    new Chart(canvas, {
      data: { labels: d.labels, datasets: datasets },
      options: {
        locale: d.locale, animation: false, responsive: true, maintainAspectRatio: false,
        scales: {
          x: { stacked: true },
          y: { stacked: true, beginAtZero: true, title: { display: true, text: d.text.count } },
          rate: { position: "right", beginAtZero: true, suggestedMax: 20, grid: { drawOnChartArea: false },
                  title: { display: true, text: d.text.rate } }
        },
        plugins: { legend: { position: "bottom" } }
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setBars(document);
    drawTrend();
    document.querySelectorAll("button.print").forEach(function (b) {
      b.addEventListener("click", function () { window.print(); });
    });
    var every = parseInt(document.body.dataset.refresh || "0", 10);
    if (every > 0) window.setInterval(refreshLive, every * 1000);
  });
})();
