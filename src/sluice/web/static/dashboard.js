/* Sluice dashboard: draws the charts (uPlot, vendored) and asks before actions. No other script runs. */
(function () {
  "use strict";
  var PALETTE = ["--c1", "--c2", "--c3", "--c4", "--c5", "--c6"];
  var plots = [];

  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function fmt(unit, v) {
    if (v == null || isNaN(v)) return "–";
    if (unit === "%") return (v * 100).toFixed(v < 0.1 ? 2 : 1) + "%";
    if (unit === "ms") return v >= 10 ? Math.round(v).toLocaleString() + " ms" : v.toFixed(1) + " ms";
    return (Math.round(v * 100) / 100).toLocaleString() + (unit ? " " + unit : "");
  }

  function build(el) {
    var spec = JSON.parse(document.getElementById(el.getAttribute("data-chart")).textContent);
    var axis = css("--axis"), grid = css("--grid");
    var series = [{ label: "time (UTC)" }];
    var data = [spec.x];
    spec.series.forEach(function (s, i) {
      var band = s.band === true;
      series.push({
        label: s.label,
        stroke: css(PALETTE[(s.color != null ? s.color : i) % PALETTE.length]),
        width: band ? 1 : 2,
        dash: band ? [4, 4] : undefined,
        spanGaps: false,
        points: { show: spec.x.length <= 60 },
        value: function (u, v) { return fmt(spec.unit, v); }
      });
      data.push(s.values);
    });
    var opts = {
      title: spec.title,
      width: Math.max(320, el.clientWidth || 600),
      height: 240,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } } },
      axes: [
        { stroke: axis, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 }, label: "time (UTC)" },
        { stroke: axis, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 }, size: 70,
          label: spec.axis, values: function (u, vals) { return vals.map(function (v) { return fmt(spec.unit, v); }); } }
      ],
      series: series
    };
    el.textContent = "";
    var plot = new uPlot(opts, data, el);
    var points = 0;
    spec.series.forEach(function (s) { s.values.forEach(function (v) { if (v != null) points++; }); });
    el.setAttribute("data-points", String(points));
    el.setAttribute("data-ready", "1");
    return { el: el, plot: plot };
  }

  function drawAll() {
    plots.forEach(function (p) { p.plot.destroy(); });
    plots = [];
    document.querySelectorAll("[data-chart]").forEach(function (el) { plots.push(build(el)); });
  }

  function resize() {
    plots.forEach(function (p) { p.plot.setSize({ width: Math.max(320, p.el.clientWidth || 600), height: 240 }); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (typeof uPlot !== "undefined") {
      drawAll();
      window.addEventListener("resize", resize);
      var dark = window.matchMedia("(prefers-color-scheme: dark)");
      if (dark.addEventListener) dark.addEventListener("change", drawAll);
    }
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (e) {
        if (!window.confirm(form.getAttribute("data-confirm"))) e.preventDefault();
      });
    });
  });
})();
