/* Charts of the analytics page (Chart.js, vendored). The figures come from the page itself
   (#chart-data); every chart has a table with the same numbers next to it. */
(function () {
  "use strict";
  var source = document.getElementById("chart-data");
  if (!source || typeof Chart === "undefined") return;
  var data = JSON.parse(source.textContent);
  var labels = data.labels;
  var BANSOS = "#a35f00";
  var NEUTRAL = "#475569";

  Chart.defaults.animation = false;
  Chart.defaults.font.family = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
  Chart.defaults.color = "#374151";
  Chart.defaults.maintainAspectRatio = false;

  function pct(value) { return Math.round(value * 1000) / 10; }
  function shortDay(iso) {
    var parts = iso.split("-");
    return parseInt(parts[2], 10) + "/" + parseInt(parts[1], 10);
  }
  function make(id, config) {
    var canvas = document.getElementById(id);
    if (canvas) new Chart(canvas, config);
  }

  make("chart-daily", {
    type: "bar",
    data: {
      labels: data.days.map(function (d) { return shortDay(d.day); }),
      datasets: labels.map(function (l) {
        return {
          label: l.name,
          data: data.days.map(function (d) { return d.counts[l.key]; }),
          backgroundColor: l.colour,
        };
      }),
    },
    options: {
      scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } },
      plugins: { legend: { position: "bottom" } },
    },
  });

  make("chart-drift", {
    type: "line",
    data: {
      labels: data.weeks.map(function (w) { return shortDay(w.week); }),
      datasets: labels.map(function (l) {
        return {
          label: l.name,
          // A week without comments has no shares: a gap, not 0%.
          data: data.weeks.map(function (w) { return w.total ? pct(w.shares[l.key]) : null; }),
          borderColor: l.colour,
          backgroundColor: l.colour,
          tension: 0,
          spanGaps: false,
        };
      }),
    },
    options: {
      scales: { y: { beginAtZero: true, max: 100, title: { display: true, text: "% komentar pekan itu" } } },
      plugins: { legend: { position: "bottom" } },
    },
  });

  make("chart-answered", {
    type: "bar",
    data: {
      labels: labels.map(function (l) { return l.name; }),
      datasets: [{
        label: "% dijawab",
        data: labels.map(function (l) { return pct(data.answers_by_label[l.key].answered_share); }),
        backgroundColor: labels.map(function (l) { return l.colour; }),
      }],
    },
    options: {
      scales: { y: { beginAtZero: true, max: 100 } },
      plugins: { legend: { display: false } },
    },
  });

  make("chart-time", {
    type: "bar",
    data: {
      labels: labels.map(function (l) { return l.name; }),
      datasets: [{
        label: "median jam sampai dijawab",
        data: labels.map(function (l) { return data.answers_by_label[l.key].median_hours_to_answer; }),
        backgroundColor: labels.map(function (l) { return l.colour; }),
      }],
    },
    options: {
      scales: { y: { beginAtZero: true, title: { display: true, text: "jam" } } },
      plugins: { legend: { display: false } },
    },
  });

  var accounts = Object.keys(data.answers_by_account);
  make("chart-accounts", {
    type: "bar",
    data: {
      labels: accounts,
      datasets: [
        {
          label: "% dijawab",
          data: accounts.map(function (a) { return pct(data.answers_by_account[a].answered_share); }),
          backgroundColor: "#0f4c81",
          yAxisID: "y",
        },
        {
          label: "median jam",
          data: accounts.map(function (a) { return data.answers_by_account[a].median_hours_to_answer; }),
          backgroundColor: "#94a3b8",
          yAxisID: "hours",
        },
      ],
    },
    options: {
      scales: {
        y: { beginAtZero: true, max: 100, position: "left", title: { display: true, text: "%" } },
        hours: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false }, title: { display: true, text: "jam" } },
      },
      plugins: { legend: { position: "bottom" } },
    },
  });

  make("chart-topics", {
    type: "bar",
    data: {
      labels: data.topics.map(function (t) { return t.name; }),
      datasets: [{
        label: "komentar",
        data: data.topics.map(function (t) { return t.count; }),
        backgroundColor: data.topics.map(function (t) { return t.bansos ? BANSOS : NEUTRAL; }),
      }],
    },
    options: {
      indexAxis: "y",
      scales: { x: { beginAtZero: true, ticks: { precision: 0 } } },
      plugins: { legend: { display: false } },
    },
  });
})();
