// Draws the dashboard's two charts from the JSON the page carries (monitoring.activity.series):
// per provider, requests created (line), completed (dotted, hidden until its legend is
// clicked) and failed or rejected (dashed).
(function () {
  const data = JSON.parse(document.getElementById("dashboard-charts").textContent);
  const colours = ["#417690", "#b35c00", "#2e7d32", "#6a1b9a", "#c62828", "#00838f"];

  function draw(canvasId, series) {
    const datasets = [];
    Object.entries(series.providers).forEach(([name, counts], i) => {
      const colour = colours[i % colours.length];
      datasets.push({ label: name + " created", data: counts.created, borderColor: colour, tension: 0.2 });
      datasets.push({ label: name + " completed", data: counts.completed, borderColor: colour, borderDash: [2, 2], tension: 0.2, hidden: true });
      datasets.push({ label: name + " failed", data: counts.failed, borderColor: "#c62828", backgroundColor: colour, borderDash: [6, 3], tension: 0.2 });
    });
    new Chart(document.getElementById(canvasId), {
      type: "line",
      data: { labels: series.labels, datasets: datasets },
      options: { animation: false, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
    });
  }

  draw("chart-day", data.day);
  draw("chart-week", data.week);
})();
