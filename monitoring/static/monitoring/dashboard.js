// Draws the dashboard's two charts from the JSON the dashboard carries (monitoring.activity.series):
// per provider, requests created (line), completed (dotted, hidden until its legend is
// clicked) and failed or rejected (dashed). The dashboard is swapped in anew every few seconds
// (htmx): the charts are drawn again from its new JSON, each line shown or hidden as it was.
(function () {
  const colours = ["#417690", "#b35c00", "#2e7d32", "#6a1b9a", "#c62828", "#00838f"];
  const charts = {};

  function draw(canvasId, series) {
    const hidden = {};
    const before = charts[canvasId];
    if (before) {
      before.data.datasets.forEach((set, i) => { hidden[set.label] = !before.isDatasetVisible(i); });
      before.destroy();
    }
    const datasets = [];
    Object.entries(series.providers).forEach(([name, counts], i) => {
      const colour = colours[i % colours.length];
      datasets.push({ label: name + " created", data: counts.created, borderColor: colour, tension: 0.2 });
      datasets.push({ label: name + " completed", data: counts.completed, borderColor: colour, borderDash: [2, 2], tension: 0.2, hidden: true });
      datasets.push({ label: name + " failed", data: counts.failed, borderColor: "#c62828", backgroundColor: colour, borderDash: [6, 3], tension: 0.2 });
    });
    datasets.forEach((set) => { if (set.label in hidden) set.hidden = hidden[set.label]; });
    charts[canvasId] = new Chart(document.getElementById(canvasId), {
      type: "line",
      data: { labels: series.labels, datasets: datasets },
      options: { animation: false, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
    });
  }

  function drawAll() {
    const data = JSON.parse(document.getElementById("dashboard-charts").textContent);
    draw("chart-day", data.day);
    draw("chart-week", data.week);
  }

  // Signed out meanwhile (the session ended): the poll was led to the log-in page, which is
  // shown as a page of its own rather than inside this one.
  document.addEventListener("htmx:beforeSwap", (event) => {
    const detail = event.detail;
    if (event.target.id === "dashboard" && !detail.isError && !detail.serverResponse.includes('id="dashboard"')) {
      detail.shouldSwap = false;
      window.location.reload();
    }
  });
  document.addEventListener("htmx:afterSwap", (event) => {
    if (event.target.id === "dashboard") drawAll();
  });
  drawAll();
})();
