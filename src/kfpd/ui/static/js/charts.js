// Hand-made SVG charts for KFP metrics: confusion matrix heatmap, ROC and PR curves.
import { h, s } from "./dom.js";

export const PALETTE = ["#0969da", "#cf222e", "#1a7f37", "#8250df", "#bc4c00", "#0a7e8c", "#bf3989", "#6e7781", "#953800", "#116329"];

function num(v) {
  const n = Number(v);
  return Number.isFinite(n) ? n : 0;
}

/** The confusion matrix of a ClassificationMetrics artifact's metadata, or null. */
export function confusionMatrixData(metadata) {
  const cm = metadata && (metadata.confusionMatrix || metadata.confusion_matrix);
  if (!cm || !Array.isArray(cm.rows)) return null;
  const specs = cm.annotationSpecs || cm.annotation_specs || [];
  const labels = specs.map((a, i) => (a && (a.displayName || a.display_name)) || `class ${i}`);
  const rows = cm.rows.map((r) => (Array.isArray(r) ? r : (r && r.row) || []).map(num));
  const n = Math.max(labels.length, rows.length);
  while (labels.length < n) labels.push(`class ${labels.length}`);
  return { labels, rows };
}

export function confusionMatrix(metadata) {
  const data = confusionMatrixData(metadata);
  if (!data) return null;
  const { labels, rows } = data;
  const n = labels.length;
  const cell = n > 12 ? 28 : 52;
  const left = 110;
  const top = 34;
  const width = left + n * cell + 10;
  const height = top + n * cell + 40;
  const max = Math.max(1, ...rows.flat());
  const svg = s("svg", { class: "chart confusion-matrix", width, height, role: "img", "aria-label": "confusion matrix" });
  svg.append(s("text", { x: left + (n * cell) / 2, y: 12, "text-anchor": "middle", "font-weight": 600 }, "Predicted"));
  svg.append(s("text", { x: 12, y: top + (n * cell) / 2, transform: `rotate(-90 12 ${top + (n * cell) / 2})`, "text-anchor": "middle", "font-weight": 600 }, "Actual"));
  labels.forEach((label, j) => {
    svg.append(s("text", { x: left + j * cell + cell / 2, y: top - 6, "text-anchor": "middle" }, label.slice(0, 10)));
    svg.append(s("text", { x: left - 6, y: top + j * cell + cell / 2 + 4, "text-anchor": "end" }, label.slice(0, 14)));
  });
  rows.forEach((row, i) => {
    for (let j = 0; j < n; j += 1) {
      const value = row[j] ?? 0;
      const t = value / max;
      const light = Math.round(97 - t * 55);
      svg.append(s("rect", {
        class: "cm-cell", x: left + j * cell, y: top + i * cell, width: cell - 1, height: cell - 1,
        fill: `hsl(212, 80%, ${light}%)`, dataset: { row: i, col: j, value },
      }, s("title", {}, `actual ${labels[i]}, predicted ${labels[j]}: ${value}`)));
      if (cell >= 40) {
        svg.append(s("text", { class: "cell-text", x: left + j * cell + cell / 2, y: top + i * cell + cell / 2 + 4,
          "text-anchor": "middle", fill: t > 0.55 ? "#fff" : "#1f2328" }, String(value)));
      }
    }
  });
  return svg;
}

/** ROC points (x = false positive rate, y = recall) and PR points (x = recall, y = precision). */
export function curvesOf(metadata) {
  const points = (metadata && (metadata.confidenceMetrics || metadata.confidence_metrics)) || [];
  if (!Array.isArray(points) || !points.length) return { roc: [], pr: [] };
  const roc = [];
  const pr = [];
  for (const p of points) {
    if (!p || typeof p !== "object") continue;
    const recall = p.recall ?? p.truePositiveRate;
    const fpr = p.falsePositiveRate ?? p.false_positive_rate;
    if (recall !== undefined && fpr !== undefined) roc.push({ x: num(fpr), y: num(recall), t: p.confidenceThreshold });
    if (recall !== undefined && p.precision !== undefined) pr.push({ x: num(recall), y: num(p.precision), t: p.confidenceThreshold });
  }
  roc.sort((a, b) => a.x - b.x || a.y - b.y);
  pr.sort((a, b) => a.x - b.x || b.y - a.y);
  return { roc, pr };
}

/** A line chart on [0,1]×[0,1]: series = [{name, points: [{x, y}]}]. */
export function curveChart(series, { title, xLabel, yLabel, diagonal = false }) {
  const w = 340;
  const hgt = 280;
  const m = { l: 46, r: 12, t: 24, b: 40 };
  const pw = w - m.l - m.r;
  const ph = hgt - m.t - m.b;
  const X = (x) => m.l + Math.max(0, Math.min(1, x)) * pw;
  const Y = (y) => m.t + (1 - Math.max(0, Math.min(1, y))) * ph;
  const svg = s("svg", { class: "chart curve-chart", width: w, height: hgt, role: "img", "aria-label": title });
  svg.append(s("text", { x: w / 2, y: 14, "text-anchor": "middle", "font-weight": 600 }, title));
  for (let i = 0; i <= 4; i += 1) {
    const v = i / 4;
    svg.append(s("line", { class: "grid", x1: X(v), x2: X(v), y1: Y(0), y2: Y(1) }));
    svg.append(s("line", { class: "grid", x1: X(0), x2: X(1), y1: Y(v), y2: Y(v) }));
    svg.append(s("text", { x: X(v), y: Y(0) + 14, "text-anchor": "middle" }, v.toFixed(2)));
    svg.append(s("text", { x: X(0) - 4, y: Y(v) + 4, "text-anchor": "end" }, v.toFixed(2)));
  }
  svg.append(s("line", { class: "axis", x1: X(0), x2: X(1), y1: Y(0), y2: Y(0) }));
  svg.append(s("line", { class: "axis", x1: X(0), x2: X(0), y1: Y(0), y2: Y(1) }));
  if (diagonal) svg.append(s("line", { class: "grid", x1: X(0), y1: Y(0), x2: X(1), y2: Y(1), "stroke-dasharray": "4 3" }));
  svg.append(s("text", { x: m.l + pw / 2, y: hgt - 6, "text-anchor": "middle" }, xLabel));
  svg.append(s("text", { x: 12, y: m.t + ph / 2, transform: `rotate(-90 12 ${m.t + ph / 2})`, "text-anchor": "middle" }, yLabel));
  series.forEach((serie, i) => {
    const color = PALETTE[i % PALETTE.length];
    const d = serie.points.map((p, k) => `${k ? "L" : "M"}${X(p.x).toFixed(1)},${Y(p.y).toFixed(1)}`).join(" ");
    svg.append(s("path", { class: "curve", d, stroke: color, dataset: { series: serie.name } }, s("title", {}, serie.name)));
  });
  const legend = h("div", { class: "legend" }, series.map((serie, i) => h("span", { style: { "--sw": PALETTE[i % PALETTE.length] } }, serie.name)));
  return h("div", { class: "chart-card" }, svg, series.length > 1 ? legend : null);
}
