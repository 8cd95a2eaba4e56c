// reinforge web UI: charts in inline SVG, plain JS (the jobs page in app.js, the studies page in studies.js).
"use strict";

// An SVG element with attributes (and text); the charts here and in studies.js are made of these.
function svgNode(tag, attrs, text) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// A line chart in inline SVG: series = [{key, name, color, points: [[x, y], ...]}].
function drawChart(svg, series) {
  const W = 640, H = 260, L = 48, R = 12, T = 14, B = 30;
  const all = series.flatMap((s) => s.points);
  const node = svgNode;
  svg.replaceChildren();
  if (!all.length) { svg.append(node("text", { x: W / 2 - 40, y: H / 2 }, "no data yet")); return; }
  let [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
  if (x1 === x0) x1 = x0 + 1;
  if (y1 - y0 < 1e-9) { y0 -= 0.5; y1 += 0.5; }
  const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
  svg.append(node("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#bbb" }),
    node("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#bbb" }));
  for (let i = 0; i <= 4; i++) {
    const y = y0 + ((y1 - y0) * i) / 4;
    svg.append(node("text", { x: 4, y: sy(y) + 4 }, y.toFixed(2)),
      node("line", { x1: L, y1: sy(y), x2: W - R, y2: sy(y), stroke: "#eee" }));
  }
  svg.append(node("text", { x: L, y: H - 8 }, `step ${x0}`), node("text", { x: W - R - 60, y: H - 8 }, `step ${x1}`));
  series.forEach((s, i) => {
    if (!s.points.length) return;
    const d = s.points.map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" ");
    svg.append(node("polyline", { points: d, fill: "none", stroke: s.color, "stroke-width": 2,
      class: `series series-${s.key}`, "data-points": s.points.length }));
    for (const p of s.points) svg.append(node("circle", { cx: sx(p[0]), cy: sy(p[1]), r: 2.5, fill: s.color }));
    svg.append(node("text", { x: L + 10 + i * 150, y: T + 4, fill: s.color, style: `fill:${s.color}` }, s.name));
  });
}

// A scatter plot in inline SVG: pts = [{x, y, front, n}]; front points in colour, the front joined by a line.
function scatter(svg, pts, xName, yName) {
  const W = 640, H = 260, L = 56, R = 12, T = 14, B = 30, node = svgNode;
  svg.replaceChildren();
  if (!pts.length) { svg.append(node("text", { x: W / 2 - 40, y: H / 2 }, "no finished trial")); return; }
  const span = (vs) => { let [lo, hi] = [Math.min(...vs), Math.max(...vs)]; if (hi - lo < 1e-12) { lo -= 0.5; hi += 0.5; } return [lo, hi]; };
  const [x0, x1] = span(pts.map((p) => p.x)), [y0, y1] = span(pts.map((p) => p.y));
  const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R), sy = (y) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
  svg.append(node("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#bbb" }),
    node("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#bbb" }),
    node("text", { x: L, y: H - 8 }, `${xName}: ${x0.toPrecision(3)} … ${x1.toPrecision(3)}`),
    node("text", { x: L + 6, y: T + 8 }, yName), node("text", { x: 2, y: sy(y0) }, y0.toPrecision(3)),
    node("text", { x: 2, y: sy(y1) + 10 }, y1.toPrecision(3)));
  const front = pts.filter((p) => p.front).sort((p, q) => p.x - q.x);
  if (front.length > 1) svg.append(node("polyline", { points: front.map((p) => `${sx(p.x)},${sy(p.y)}`).join(" "),
    fill: "none", stroke: "#2f6fde", "stroke-dasharray": "4 3" }));
  for (const p of pts) svg.append(node("circle", { cx: sx(p.x), cy: sy(p.y), r: p.front ? 4.5 : 3,
    fill: p.front ? "#2f6fde" : "#b8bfcc", class: p.front ? "point front" : "point", "data-trial": p.n }));
}
