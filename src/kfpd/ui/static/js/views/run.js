// Run details: the live graph, a side panel per task (I/O, cache, retries, error, log),
// metrics, details, and the run actions (terminate, retry, archive, delete, clone).
import {
  API, TERMINAL_RUN_STATES, UI_API, api, duration, errorBox, fmtDuration, fmtTime, fmtValue, stateBadge, toast,
} from "../api.js";
import { confusionMatrix, curveChart, curvesOf } from "../charts.js";
import { h, mount } from "../dom.js";
import { GraphView } from "../graph.js";
import { LogTail } from "../logs.js";
import { setQuery } from "../nav.js";
import { openRunDialog } from "../runform.js";

const POLL_MS = 1500;
const enc = encodeURIComponent;
const LOGGED_TYPES = new Set(["RUNTIME", "IMPORTER"]);

function kv(rows) {
  return h("table", { class: "kv" }, h("tbody", {}, rows.filter(Boolean).map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, v ?? "–")))));
}

function producerText(producer) {
  if (!producer || !producer.task_name) return "";
  return producer.iteration !== undefined && producer.iteration !== null
    ? `${producer.task_name} [${producer.iteration}]` : producer.task_name;
}

function paramTable(params) {
  if (!params || !params.length) return h("p", { class: "muted" }, "none");
  return h("table", { class: "list params" },
    h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Value"), h("th", {}, "Kind"), h("th", {}, "From"))),
    h("tbody", {}, params.map((p) => h("tr", { dataset: { param: p.parameter_key } },
      h("td", {}, p.parameter_key), h("td", { class: "mono" }, fmtValue(p.value)), h("td", { class: "muted" }, p.type || ""),
      h("td", {}, producerText(p.producer))))));
}

function artifactTable(groups) {
  if (!groups || !groups.length) return h("p", { class: "muted" }, "none");
  const rows = [];
  for (const g of groups) {
    for (const a of g.artifacts || []) {
      rows.push(h("tr", { dataset: { artifactKey: g.artifact_key } },
        h("td", {}, g.artifact_key), h("td", {}, h("a", { href: `#/artifacts/${a.artifact_id}` }, a.name || a.artifact_id)),
        h("td", {}, a.type || ""), h("td", { class: "mono" }, a.number_value !== undefined ? fmtValue(a.number_value) : ""),
        h("td", {}, producerText(g.producer))));
    }
  }
  return h("table", { class: "list artifacts" },
    h("thead", {}, h("tr", {}, h("th", {}, "Key"), h("th", {}, "Artifact"), h("th", {}, "Type"), h("th", {}, "Value"), h("th", {}, "From"))),
    h("tbody", {}, rows));
}

function taskError(task) {
  if (task.status_metadata && task.status_metadata.message && task.state === "FAILED") return task.status_metadata.message;
  const history = task.state_history || [];
  for (let i = history.length - 1; i >= 0; i -= 1) {
    if (history[i].error && history[i].error.message) return history[i].error.message;
  }
  return task.state === "FAILED" && task.status_metadata ? task.status_metadata.message : "";
}

function cacheText(task) {
  if (task.state === "CACHED") return "cache hit: outputs reused from an earlier task";
  if (task.cache_fingerprint) return "cache miss: executed (result can be reused)";
  return "not cached (caching off or not computed)";
}

function taskDetails(task) {
  const history = task.state_history || [];
  const runs = history.filter((x) => x.state === "RUNNING");
  const started = (runs[0] && runs[0].update_time) || task.create_time;
  const attempts = Math.max(runs.length, 1);
  const attrs = task.type_attributes || {};
  const error = taskError(task);
  const isRuntime = LOGGED_TYPES.has(task.type);
  return h("div", { class: "task-details" },
    error ? h("div", { class: "error-box task-error", role: "alert" }, `Error: ${error}`) : null,
    kv([
      ["Task ID", h("span", { class: "mono" }, task.task_id)],
      ["Type", task.type],
      ["State", stateBadge(task.state)],
      attrs.iteration_index !== undefined && ["Iteration", String(attrs.iteration_index)],
      attrs.iteration_count !== undefined && ["Iterations", String(attrs.iteration_count)],
      ["Started", fmtTime(started)],
      ["Finished", fmtTime(task.end_time)],
      ["Duration", fmtDuration(duration(started, task.end_time, task.state === "RUNNING"))],
      isRuntime && ["Cache", h("span", { class: "cache-status" }, cacheText(task))],
      isRuntime && ["Fingerprint", h("span", { class: "mono fingerprint" }, task.cache_fingerprint || "–")],
      isRuntime && ["Attempts", h("span", { class: "attempts" }, `${attempts} (retries: ${attempts - 1})`)],
      task.pods && task.pods.length && ["Pods", task.pods.map((p) => `${p.name || p.uid || "?"} (${p.type || ""})`).join(", ")],
      task.scope_path && ["Scope", h("span", { class: "mono" }, task.scope_path)],
    ]),
    h("h3", {}, "Inputs"),
    h("div", { class: "inputs" }, h("h4", { class: "muted" }, "Parameters"), paramTable(task.inputs && task.inputs.parameters),
      h("h4", { class: "muted" }, "Artifacts"), artifactTable(task.inputs && task.inputs.artifacts)),
    h("h3", {}, "Outputs"),
    h("div", { class: "outputs" }, h("h4", { class: "muted" }, "Parameters"), paramTable(task.outputs && task.outputs.parameters),
      h("h4", { class: "muted" }, "Artifacts"), artifactTable(task.outputs && task.outputs.artifacts)));
}

function specInfo(spec) {
  return kv([
    ["Task", spec.key],
    ["Component", spec.component],
    spec.image && ["Image", h("span", { class: "mono" }, spec.image)],
    spec.condition && ["Condition", h("span", { class: "mono" }, spec.condition)],
    spec.iterator && ["Loop", spec.iterator],
    spec.exitTask && ["Runs", "always, after its upstream tasks (exit task)"],
  ]);
}

export async function render(root, [runId], query) {
  let first;
  try {
    first = await api(`${UI_API}/runs/${enc(runId)}/graph`, { params: { spec: "true" }, etag: "" });
  } catch (err) {
    mount(root, h("h1", {}, "Run"), errorBox(err, `Run ${runId} cannot be shown`), h("p", {}, h("a", { href: "#/runs" }, "Back to the runs list")));
    return undefined;
  }
  const state = {
    run: first.run, spec: first.spec, tasks: first.tasks, etag: first._etag, timer: null, stopped: false,
    selectedVid: null, panelTaskId: null, panelSignature: null, logTail: null, tab: query.get("tab") || "graph",
    metricsLoadedFor: null,
  };

  // ------------------------------------------------------------ header and actions
  const title = h("h1", {});
  const actions = h("div", { class: "actions" });
  const meta = h("div", { class: "run-meta muted" });
  const staleNote = h("div", { class: "notice", hidden: true });

  function renderHeader() {
    const run = state.run;
    mount(title, h("span", { class: "run-name" }, run.display_name || run.run_id), stateBadge(run.state),
      run.storage_state === "ARCHIVED" ? h("span", { class: "badge" }, "ARCHIVED") : null);
    title.dataset.state = run.state;
    const running = !TERMINAL_RUN_STATES.has(run.state);
    mount(meta,
      `Created ${fmtTime(run.created_at)} · duration `,
      h("span", { class: "run-duration" }, fmtDuration(duration(run.created_at, run.finished_at, running))),
      ` · ${run.task_count ?? 0} tasks`,
      run.experiment_id ? [" · ", h("a", { href: `#/experiments/${run.experiment_id}` }, "experiment")] : null,
      run.recurring_run_id ? [" · ", h("a", { href: `#/recurringruns/${run.recurring_run_id}` }, "recurring run")] : null,
      run.error && run.error.message ? h("div", { class: "error-box run-error" }, run.error.message) : null);
    mount(actions,
      h("button", { class: "danger", dataset: { action: "terminate" }, disabled: !running, onclick: () => act("terminate") }, "Terminate"),
      h("button", { dataset: { action: "retry" }, disabled: !["FAILED", "CANCELED"].includes(run.state), onclick: () => act("retry") }, "Retry"),
      run.storage_state === "ARCHIVED"
        ? h("button", { dataset: { action: "unarchive" }, onclick: () => act("unarchive") }, "Restore")
        : h("button", { dataset: { action: "archive" }, onclick: () => act("archive") }, "Archive"),
      h("button", { dataset: { action: "clone" }, onclick: cloneRun }, "Clone"),
      h("button", { class: "danger", dataset: { action: "delete" }, onclick: () => act("delete") }, "Delete"));
  }

  async function act(kind) {
    const name = state.run.display_name || state.run.run_id;
    if (kind === "terminate" && !window.confirm(`Terminate run "${name}"? Unfinished tasks will be canceled.`)) return;
    if (kind === "delete" && !window.confirm(`Delete run "${name}" with its tasks? Artifacts stay.`)) return;
    try {
      if (kind === "delete") {
        await api(`${API}/runs/${enc(runId)}`, { method: "DELETE" });
        toast(`Run "${name}" was deleted.`);
        location.hash = "#/runs";
        return;
      }
      await api(`${API}/runs/${enc(runId)}:${kind}`, { method: "POST", body: {} });
      toast(`${kind[0].toUpperCase()}${kind.slice(1)}: done.`);
    } catch (err) {
      toast(`Could not ${kind} the run: ${err.message}`, "error");
    }
    refreshNow();
  }

  async function cloneRun() {
    const run = state.run;
    const created = await openRunDialog({
      title: "Clone run", spec: state.spec, versionRef: run.pipeline_version_reference,
      defaults: {
        display_name: `Clone of ${run.display_name || run.run_id}`, experiment_id: run.experiment_id,
        parameters: (run.runtime_config && run.runtime_config.parameters) || {},
        pipeline_root: run.runtime_config && run.runtime_config.pipeline_root,
      },
    });
    if (created) location.hash = `#/runs/${created.run_id}`;
  }

  // ------------------------------------------------------------ tabs
  const panes = {
    graph: h("section", { class: "pane pane-graph" }),
    metrics: h("section", { class: "pane pane-metrics" }),
    details: h("section", { class: "pane pane-details" }),
  };
  const tabButtons = Object.entries({ graph: "Graph", metrics: "Metrics", details: "Details" }).map(([key, label]) =>
    h("button", { dataset: { tab: key }, onclick: () => showTab(key) }, label));
  const tabs = h("div", { class: "tabs", role: "tablist" }, tabButtons,
    h("a", { href: `#/artifacts?run=${enc(runId)}`, style: { padding: "6px 14px" } }, "Artifacts"));

  function showTab(key) {
    state.tab = panes[key] ? key : "graph";
    for (const [name, pane] of Object.entries(panes)) pane.hidden = name !== state.tab;
    tabButtons.forEach((b) => b.classList.toggle("active", b.dataset.tab === state.tab));
    setQuery({ tab: state.tab === "graph" ? "" : state.tab });
    if (state.tab === "metrics") loadMetrics();
    if (state.tab === "details") renderDetails();
  }

  // ------------------------------------------------------------ graph and side panel
  const graphBox = h("div", { class: "graph-wrap", id: "run-graph" });
  const panel = h("aside", { class: "side-panel", hidden: true, "aria-label": "task details" });
  const graph = new GraphView(graphBox, state.spec, { live: true, onSelect: (node) => openPanel(node) });
  mount(panes.graph,
    h("div", { class: "graph-tools" },
      h("button", { title: "zoom out", onclick: () => graph.zoom(0.8) }, "−"),
      h("button", { title: "zoom in", onclick: () => graph.zoom(1.25) }, "+"),
      h("button", { onclick: () => graph.zoom("fit") }, "Fit"),
      h("span", { class: "muted" }, "Click a task for its inputs, outputs and log; + expands a group or loop.")),
    h("div", { class: "run-layout" }, graphBox, panel));

  function closePanel() {
    if (state.logTail) state.logTail.stop();
    state.logTail = null;
    state.panelTaskId = null;
    state.selectedVid = null;
    panel.hidden = true;
    graph.select(null);
    setQuery({ task: "" });
  }

  async function openPanel(node) {
    const taskId = node.task ? node.task.id : null;
    if (state.logTail && state.panelTaskId !== taskId) {
      state.logTail.stop();
      state.logTail = null;
    }
    state.selectedVid = node.vid;
    state.panelTaskId = taskId;
    state.panelSignature = node.task ? `${node.task.state}|${node.task.finished || ""}` : null;
    panel.hidden = false;
    setQuery({ task: taskId || "" });
    const details = h("div", { class: "panel-body" }, h("p", { class: "muted" }, "Loading…"));
    const loopInfo = node.loop ? h("p", { class: "loop-info" },
      `${node.loop.count} iterations; showing iteration ${node.loop.selected}. `,
      Object.entries(node.loop.counts).map(([st, n]) => `${n} ${st.toLowerCase()}`).join(", ")) : null;
    const logSection = h("div", { class: "panel-log" });
    mount(panel,
      h("button", { class: "close", onclick: closePanel, "aria-label": "close" }, "×"),
      h("h2", { class: "panel-title" }, node.spec.label),
      specInfo(node.spec), loopInfo, details, logSection);
    if (!node.task) {
      mount(details, h("p", { class: "muted not-started" },
        graph.notRunState() === "NOT_RUN" ? "This task did not run." : "This task has not started yet."));
      return;
    }
    await loadPanelDetails(details, node.task.id);
    if (LOGGED_TYPES.has(node.task.type) && state.panelTaskId === node.task.id) {
      if (!state.logTail) {
        state.logTail = new LogTail(runId, node.task.id).start();
      }
      mount(logSection, h("h3", {}, "Log"), state.logTail.element);
    }
  }

  async function loadPanelDetails(target, taskId) {
    try {
      const task = await api(`${API}/runs/${enc(runId)}/tasks/${enc(taskId)}`);
      if (state.panelTaskId !== taskId) return;
      mount(target, taskDetails(task));
    } catch (err) {
      if (state.panelTaskId === taskId) mount(target, errorBox(err, "Could not load the task"));
    }
  }

  function refreshPanel() {
    if (!state.panelTaskId) return;
    const row = state.tasks.find((t) => t.id === state.panelTaskId);
    if (!row) return;
    const signature = `${row.state}|${row.finished || ""}`;
    if (signature === state.panelSignature) return;
    state.panelSignature = signature;
    const target = panel.querySelector(".panel-body");
    if (target) loadPanelDetails(target, row.id);
  }

  // ------------------------------------------------------------ metrics
  async function loadMetrics() {
    const key = `${state.run.state}|${state.run.task_count}`;
    if (state.metricsLoadedFor === key) return;
    state.metricsLoadedFor = key;
    mount(panes.metrics, h("p", { class: "muted" }, "Loading metrics…"));
    let data;
    try {
      data = await api(`${UI_API}/runs/${enc(runId)}/metrics`);
    } catch (err) {
      mount(panes.metrics, errorBox(err, "Could not load metrics"));
      return;
    }
    mount(panes.metrics, metricsView(data.metrics || []));
  }

  // ------------------------------------------------------------ details
  function renderDetails() {
    const run = state.run;
    const params = (run.runtime_config && run.runtime_config.parameters) || {};
    const ref = run.pipeline_version_reference;
    mount(panes.details,
      kv([
        ["Run ID", h("span", { class: "mono" }, run.run_id)],
        ["Name", run.display_name],
        run.description && ["Description", run.description],
        ["State", stateBadge(run.state)],
        ["Storage", run.storage_state],
        ["Experiment", run.experiment_id ? h("a", { href: `#/experiments/${run.experiment_id}` }, run.experiment_id) : "–"],
        run.recurring_run_id && ["Recurring run", h("a", { href: `#/recurringruns/${run.recurring_run_id}` }, run.recurring_run_id)],
        run.recurring_run_id && ["Scheduled for", fmtTime(run.scheduled_at)],
        ref && ref.pipeline_id && ["Pipeline", h("a", { href: `#/pipelines/${ref.pipeline_id}?version=${ref.pipeline_version_id || ""}` }, ref.pipeline_id)],
        ["Created", fmtTime(run.created_at)],
        ["Finished", fmtTime(run.finished_at)],
        ["Pipeline root", run.runtime_config && run.runtime_config.pipeline_root],
        run.service_account && ["Service account", run.service_account],
      ]),
      h("h2", {}, "Parameters"),
      Object.keys(params).length
        ? h("table", { class: "list run-params" }, h("tbody", {}, Object.entries(params).map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", { class: "mono" }, fmtValue(v))))))
        : h("p", { class: "muted" }, "No parameters."),
      h("h2", {}, "State history"),
      h("table", { class: "list" }, h("tbody", {}, (run.state_history || []).map((x) =>
        h("tr", {}, h("td", {}, fmtTime(x.update_time)), h("td", {}, stateBadge(x.state)), h("td", {}, (x.error && x.error.message) || ""))))));
  }

  // ------------------------------------------------------------ live updates
  function apply(data) {
    const wasTerminal = TERMINAL_RUN_STATES.has(state.run.state);
    state.run = data.run;
    state.tasks = data.tasks;
    renderHeader();
    graph.update(state.tasks, state.run.state);
    const selected = state.selectedVid && graph.viewNodes.get(state.selectedVid);
    if (selected && (selected.task ? selected.task.id : null) !== state.panelTaskId) openPanel(selected);
    else refreshPanel();
    if (state.tab === "details") renderDetails();
    if (state.tab === "metrics" && (TERMINAL_RUN_STATES.has(state.run.state) !== wasTerminal)) loadMetrics();
  }

  async function poll() {
    state.timer = null;
    if (state.stopped) return;
    try {
      const data = await api(`${UI_API}/runs/${enc(runId)}/graph`, { etag: state.etag || "" });
      staleNote.hidden = true;
      if (data) {
        state.etag = data._etag;
        apply(data);
      }
    } catch (err) {
      staleNote.hidden = false;
      staleNote.textContent = err.status === 404
        ? "This run no longer exists (it was deleted)."
        : `Live updates paused: ${err.message}. Retrying…`;
      if (err.status === 404) return;
    }
    schedule();
  }

  function schedule() {
    if (state.stopped || state.timer) return;
    if (TERMINAL_RUN_STATES.has(state.run.state)) return;
    state.timer = setTimeout(poll, POLL_MS);
  }

  function refreshNow() {
    clearTimeout(state.timer);
    state.timer = null;
    poll();
  }

  mount(root, title, actions, meta, staleNote, tabs, panes.graph, panes.metrics, panes.details);
  renderHeader();
  graph.update(state.tasks, state.run.state);
  showTab(state.tab);
  const wanted = query.get("task");
  if (wanted) {
    const node = graph.nodeForTask(wanted);
    if (node) graph.select(node.vid);
  }
  schedule();
  window.__kfpdGraph = graph; // for tests and benchmarks: layout counters, visible nodes

  // The duration keeps counting while the run goes, between polls that bring no change (304).
  const clock = setInterval(() => {
    const run = state.run;
    if (TERMINAL_RUN_STATES.has(run.state)) return;
    const shown = meta.querySelector(".run-duration");
    if (shown) shown.textContent = fmtDuration(duration(run.created_at, run.finished_at, true));
  }, 1000);

  return () => {
    clearInterval(clock);
    state.stopped = true;
    clearTimeout(state.timer);
    if (state.logTail) state.logTail.stop();
    if (window.__kfpdGraph === graph) delete window.__kfpdGraph;
  };
}

/** The metrics of one run: scalar table, then per classification artifact its charts. */
export function metricsView(metrics) {
  if (!metrics.length) return h("p", { class: "muted" }, "This run has no metrics artifacts.");
  const scalars = metrics.filter((m) => m.artifact.type === "Metric");
  const classification = metrics.filter((m) => m.artifact.type === "ClassificationMetric");
  const sliced = metrics.filter((m) => m.artifact.type === "SlicedClassificationMetric");
  const where = (m) => (m.iteration !== undefined ? `${m.task_name} [${m.iteration}]` : m.task_name);
  const out = [];
  if (scalars.length) {
    out.push(h("h2", {}, "Scalar metrics"), h("table", { class: "list scalar-metrics" },
      h("thead", {}, h("tr", {}, h("th", {}, "Task"), h("th", {}, "Output"), h("th", {}, "Metric"), h("th", {}, "Value"))),
      h("tbody", {}, scalars.map((m) => h("tr", { dataset: { metric: m.artifact.name } },
        h("td", {}, where(m)), h("td", {}, m.key), h("td", {}, h("a", { href: `#/artifacts/${m.artifact.artifact_id}` }, m.artifact.name)),
        h("td", { class: "mono metric-value" }, fmtValue(m.artifact.number_value)))))));
  }
  for (const m of classification) {
    const meta = m.artifact.metadata || {};
    const { roc, pr } = curvesOf(meta);
    const cm = confusionMatrix(meta);
    const charts = [];
    if (cm) charts.push(h("div", { class: "chart-card" }, h("h3", {}, "Confusion matrix"), cm));
    if (roc.length) charts.push(curveChart([{ name: m.artifact.name, points: roc }], { title: "ROC curve", xLabel: "false positive rate", yLabel: "true positive rate (recall)", diagonal: true }));
    if (pr.length) charts.push(curveChart([{ name: m.artifact.name, points: pr }], { title: "Precision–recall", xLabel: "recall", yLabel: "precision" }));
    out.push(h("section", { class: "classification", dataset: { artifactId: m.artifact.artifact_id } },
      h("h2", {}, `${where(m)} · `, h("a", { href: `#/artifacts/${m.artifact.artifact_id}` }, m.artifact.name)),
      charts.length ? h("div", { class: "charts" }, charts) : h("p", { class: "muted" }, "No confusion matrix or curve in this artifact.")));
  }
  for (const m of sliced) {
    out.push(h("section", { class: "sliced" }, h("h2", {}, `${where(m)} · ${m.artifact.name} (sliced)`),
      h("pre", { class: "preview" }, JSON.stringify(m.artifact.metadata || {}, null, 2))));
  }
  return h("div", {}, out);
}
