// Compare 2–10 runs side by side: overview, parameters and metrics, differing rows highlighted,
// ROC curves overlaid and confusion matrices next to each other. One request for everything.
import { UI_API, api, duration, errorBox, fmtDuration, fmtTime, fmtValue, stateBadge } from "../api.js";
import { confusionMatrix, curveChart, curvesOf } from "../charts.js";
import { h, mount } from "../dom.js";

function compareTable(title, className, keys, runs, valueOf) {
  if (!keys.length) return [h("h2", {}, title), h("p", { class: "muted" }, "none")];
  const rows = keys.map((key) => {
    const values = runs.map((r) => valueOf(r, key));
    const shown = values.map((v) => (v === undefined ? "" : fmtValue(v)));
    const differs = new Set(shown).size > 1;
    return h("tr", { class: differs ? "diff" : "", dataset: { key, differs: differs ? "true" : "false" } },
      h("th", {}, key), shown.map((v) => h("td", { class: "mono" }, v === "" ? "–" : v)));
  });
  return [h("h2", {}, title), h("div", { class: "table-scroll" }, h("table", { class: `list ${className}` },
    h("thead", {}, h("tr", {}, h("th", {}, ""), runs.map((r) => h("th", {}, h("a", { href: `#/runs/${r.run.run_id}` }, r.run.display_name || r.run.run_id))))),
    h("tbody", {}, rows)))];
}

function metricKey(m) {
  const where = m.iteration !== undefined ? `${m.task_name}[${m.iteration}]` : m.task_name;
  return `${where} / ${m.artifact.name}`;
}

export async function render(root, _params, query) {
  // runlist= is upstream KFP's compare link.
  const ids = (query.get("runs") || query.get("runlist") || "").split(",").map((x) => x.trim()).filter(Boolean);
  mount(root, h("h1", {}, "Compare runs"));
  if (ids.length < 2 || ids.length > 10) {
    root.append(h("div", { class: "error-box", role: "alert" }, "Choose 2 to 10 runs to compare (tick them in the runs list)."));
    return undefined;
  }
  let data;
  try {
    data = await api(`${UI_API}/compare`, { params: { run_ids: ids } });
  } catch (err) {
    root.append(errorBox(err, "Cannot compare these runs"));
    return undefined;
  }
  const runs = data.runs || [];
  const params = (r) => (r.run.runtime_config && r.run.runtime_config.parameters) || {};
  const paramKeys = [...new Set(runs.flatMap((r) => Object.keys(params(r))))].sort();
  const scalars = runs.map((r) => new Map(r.metrics.filter((m) => m.artifact.type === "Metric").map((m) => [metricKey(m), m.artifact.number_value])));
  const metricKeys = [...new Set(scalars.flatMap((m) => [...m.keys()]))].sort();
  const overview = ["state", "created", "duration", "tasks"];
  const overviewValue = (r, key) => {
    const run = r.run;
    if (key === "state") return run.state;
    if (key === "created") return fmtTime(run.created_at);
    if (key === "duration") return fmtDuration(duration(run.created_at, run.finished_at, false));
    return run.task_count;
  };
  const rocSeries = [];
  const matrices = [];
  runs.forEach((r) => {
    for (const m of r.metrics.filter((x) => x.artifact.type === "ClassificationMetric")) {
      const { roc } = curvesOf(m.artifact.metadata);
      const name = `${r.run.display_name} · ${m.artifact.name}`;
      if (roc.length) rocSeries.push({ name, points: roc });
      const cm = confusionMatrix(m.artifact.metadata);
      if (cm) matrices.push(h("div", { class: "chart-card" }, h("h3", {}, name), cm));
    }
  });
  root.append(
    h("p", { class: "muted" }, "Rows whose values differ between runs are highlighted."),
    h("div", {}, runs.map((r) => h("span", { style: { "margin-right": "12px" } }, h("a", { href: `#/runs/${r.run.run_id}` }, r.run.display_name), " ", stateBadge(r.run.state)))),
    ...compareTable("Overview", "compare-overview", overview, runs, overviewValue),
    ...compareTable("Parameters", "compare-params", paramKeys, runs, (r, k) => params(r)[k]),
    ...compareTable("Metrics", "compare-metrics", metricKeys, runs, (r, k) => scalars[runs.indexOf(r)].get(k)),
    rocSeries.length ? h("h2", {}, "ROC curves") : null,
    rocSeries.length ? curveChart(rocSeries, { title: "ROC curve", xLabel: "false positive rate", yLabel: "true positive rate", diagonal: true }) : null,
    matrices.length ? h("h2", {}, "Confusion matrices") : null,
    matrices.length ? h("div", { class: "charts" }, matrices) : null,
  );
  return undefined;
}
