// Small progressive enhancements of the admin UI; every page works without them.
document.addEventListener("DOMContentLoaded", () => {
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.submit());
  }
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
  for (const button of document.querySelectorAll("[data-copy]")) {
    button.addEventListener("click", async () => {
      const source = document.querySelector(button.dataset.copy);
      if (source && navigator.clipboard) {
        await navigator.clipboard.writeText(source.textContent);
        button.textContent = "Copied";
      }
    });
  }
  const toggle = document.querySelector("[data-menu]");
  const nav = document.getElementById("sidenav");
  if (toggle && nav) {
    toggle.addEventListener("click", () => {
      const open = nav.classList.toggle("open");
      toggle.setAttribute("aria-expanded", String(open));
    });
  }
});

// Charts: each `[data-chart]` holds a plotly.js figure as JSON; the table beside it has
// the same numbers. plotly.js is large, so it is loaded only on pages that draw a chart.
function drawCharts() {
  const plots = document.querySelectorAll("[data-chart]");
  if (plots.length === 0) return;
  const draw = () => {
    for (const plot of plots) {
      const figure = JSON.parse(plot.dataset.chart);
      window.Plotly.newPlot(plot, figure.data, figure.layout, {
        displaylogo: false,
        responsive: true,
        modeBarButtonsToRemove: ["lasso2d", "select2d"],
      });
      plot.dataset.drawn = "true";
    }
  };
  if (window.Plotly) {
    draw();
    return;
  }
  const script = document.createElement("script");
  script.src = "/ui/plotly.js";
  script.onload = draw;
  document.head.appendChild(script);
}
document.addEventListener("DOMContentLoaded", drawCharts);
