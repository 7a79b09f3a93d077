// Draws each <canvas data-chart='{"labels": [...], "values": [...], "axisLabel": "...",
// "horizontal": false}'> as a Chart.js bar chart. The canvas carries role="img" and an
// aria-label summarising the chart; the tables on the page hold every figure.
(function () {
  "use strict";
  if (typeof Chart === "undefined") return;

  const nhsBlue = "#005eb8";
  const nhsText = "#212b32";
  Chart.defaults.font.family = "arial, sans-serif";
  Chart.defaults.font.size = 14;
  Chart.defaults.color = nhsText;

  for (const canvas of document.querySelectorAll("canvas[data-chart]")) {
    const spec = JSON.parse(canvas.dataset.chart);
    const valueAxis = spec.horizontal ? "x" : "y";
    new Chart(canvas, {
      type: "bar",
      data: {
        labels: spec.labels,
        datasets: [{ label: spec.axisLabel, data: spec.values, backgroundColor: nhsBlue }],
      },
      options: {
        indexAxis: spec.horizontal ? "y" : "x",
        animation: false,
        maintainAspectRatio: false,
        plugins: { legend: { display: false } },
        scales: {
          [valueAxis]: {
            beginAtZero: true,
            title: { display: true, text: spec.axisLabel },
          },
        },
      },
    });
  }
})();
