// Artifacts: a paged list (filters: type, name, run) and an artifact page with metadata,
// preview (text, CSV, markdown, sandboxed HTML, images), download, producers/consumers and a
// lineage graph that grows one hop per click.
import dagre from "../../vendor/dagre/dagre.esm.js";
import { API, UI_API, api, errorBox, fmtBytes, fmtTime, fmtValue, kfpFilter } from "../api.js";
import { confusionMatrix, curveChart, curvesOf } from "../charts.js";
import { h, mount, s } from "../dom.js";
import { setQuery } from "../nav.js";

const PAGE_SIZE = 20;
const TYPES = ["", "Artifact", "Model", "Dataset", "HTML", "Markdown", "Metric", "ClassificationMetric", "SlicedClassificationMetric"];
const CSV_ROWS = 500;
const enc = encodeURIComponent;

export async function renderList(root, _params, query) {
  const state = {
    type: TYPES.includes(query.get("type") || "") ? query.get("type") || "" : "",
    name: query.get("q") || "",
    run: query.get("run") || "",
    sort: query.get("sort") === "name" ? "name" : "created_at",
    logs: query.get("logs") === "1",
    tokens: [""],
    page: 0,
  };
  let generation = 0;
  const typeSelect = h("select", { "aria-label": "filter by type" }, TYPES.map((t) => h("option", { value: t, selected: t === state.type }, t || "any type")));
  const nameInput = h("input", { type: "search", placeholder: "name contains…", value: state.name, "aria-label": "filter by name" });
  const runInput = h("input", { type: "search", placeholder: "run id", value: state.run, size: 38, "aria-label": "filter by run" });
  const sortSelect = h("select", { "aria-label": "sort" }, h("option", { value: "created_at", selected: state.sort === "created_at" }, "newest first"),
    h("option", { value: "name", selected: state.sort === "name" }, "by name"));
  // Every task's log is also an "executor-logs" artifact (as upstream): hidden unless asked for.
  const logsBox = h("input", { type: "checkbox", checked: state.logs, "aria-label": "show task logs" });
  const summary = h("span", { class: "muted" });
  const body = h("div", {});
  const pager = h("div", { class: "pager" });
  const apply = () => {
    state.type = typeSelect.value;
    state.name = nameInput.value.trim();
    state.run = runInput.value.trim();
    state.sort = sortSelect.value;
    state.logs = logsBox.checked;
    state.tokens = [""];
    state.page = 0;
    setQuery({ type: state.type, q: state.name, run: state.run, sort: state.sort === "name" ? "name" : "", logs: state.logs ? "1" : "" });
    load();
  };
  let typing;
  [nameInput, runInput].forEach((el) => el.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(apply, 300); }));
  [typeSelect, sortSelect, logsBox].forEach((el) => el.addEventListener("change", apply));
  mount(root, h("h1", {}, "Artifacts"),
    h("div", { class: "toolbar" }, nameInput, h("label", {}, "Type", typeSelect), h("label", {}, "Run", runInput), sortSelect,
      h("label", {}, logsBox, " task logs"), summary),
    body, pager);

  async function load() {
    const mine = ++generation;
    const started = performance.now();
    let data;
    try {
      data = await api(`${UI_API}/artifacts`, {
        params: {
          page_size: PAGE_SIZE, page_token: state.tokens[state.page], run_id: state.run,
          sort_by: state.sort === "name" ? "name" : "created_at desc",
          filter: kfpFilter([
            state.type && { key: "type", operation: "EQUALS", string_value: state.type },
            state.name && { key: "name", operation: "IS_SUBSTRING", string_value: state.name },
            !state.logs && { key: "name", operation: "NOT_EQUALS", string_value: "executor-logs" },
          ]),
        },
      });
    } catch (err) {
      if (mine === generation) mount(body, errorBox(err, "Could not list artifacts"));
      return;
    }
    if (mine !== generation) return;
    const items = data.artifacts || [];
    summary.textContent = `${data.total_size || 0} artifacts`;
    mount(body, items.length
      ? h("table", { class: "list artifacts-list" },
        h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Type"), h("th", {}, "Produced by"), h("th", {}, "Created"), h("th", {}, "URI / value"))),
        h("tbody", {}, items.map((a) => h("tr", { dataset: { artifactId: a.artifact_id } },
          h("td", {}, h("a", { href: `#/artifacts/${a.artifact_id}` }, a.name || a.artifact_id)),
          h("td", {}, a.type),
          h("td", {}, a.producer ? [h("a", { href: `#/runs/${a.producer.run_id}?task=${a.producer.task_id}` }, a.producer.task_name), " in ",
            h("a", { href: `#/runs/${a.producer.run_id}` }, a.producer.run_name || a.producer.run_id.slice(0, 8))] : "–"),
          h("td", {}, fmtTime(a.created_at)),
          h("td", { class: "mono" }, a.number_value !== undefined ? fmtValue(a.number_value) : (a.uri || ""))))))
      : h("p", { class: "muted" }, "No artifacts match these filters."));
    body.dataset.loadMs = String(Math.round(performance.now() - started));
    const pages = Math.max(1, Math.ceil((data.total_size || 0) / PAGE_SIZE));
    mount(pager,
      h("button", { disabled: state.page === 0, onclick: () => { state.page -= 1; load(); } }, "‹ Previous"),
      h("span", { class: "muted" }, `page ${state.page + 1} of ${pages}`),
      h("button", { disabled: !data.next_page_token, onclick: () => { state.tokens[state.page + 1] = data.next_page_token; state.page += 1; load(); } }, "Next ›"));
  }
  load();
  return () => { generation += 1; clearTimeout(typing); };
}

// ---------------------------------------------------------------- one artifact

/** Parse CSV/TSV text (quotes, doubled quotes, embedded newlines). */
export function parseCsv(text, maxRows = CSV_ROWS) {
  const firstLine = text.slice(0, text.indexOf("\n") >>> 0);
  const sep = (firstLine.match(/\t/g) || []).length > (firstLine.match(/,/g) || []).length ? "\t" : ",";
  const rows = [];
  let row = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i += 1; } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"' && field === "") quoted = true;
    else if (c === sep) { row.push(field); field = ""; } else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i += 1;
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
      if (rows.length >= maxRows) return rows;
    } else field += c;
  }
  if (field !== "" || row.length) { row.push(field); rows.push(row); }
  return rows;
}

function csvTable(text) {
  const rows = parseCsv(text);
  if (!rows.length) return h("p", { class: "muted" }, "empty");
  const [head, ...rest] = rows;
  return h("div", { class: "table-scroll" }, h("table", { class: "list csv-preview" },
    h("thead", {}, h("tr", {}, head.map((c) => h("th", {}, c)))),
    h("tbody", {}, rest.map((r) => h("tr", {}, r.map((c) => h("td", {}, c)))))),
  rows.length >= CSV_ROWS ? h("p", { class: "muted" }, `First ${CSV_ROWS} rows shown.`) : null);
}

function contentUrl(id, path, extra = {}) {
  const params = new URLSearchParams({ ...(path ? { path } : {}), ...extra });
  const q = params.toString();
  return `${UI_API}/artifacts/${enc(id)}/content${q ? `?${q}` : ""}`;
}

async function renderPreview(target, artifact, path = "") {
  const id = artifact.artifact_id;
  mount(target, h("p", { class: "muted" }, "Loading preview…"));
  let info;
  try {
    info = await api(`${UI_API}/artifacts/${enc(id)}/preview`, { params: { path } });
  } catch (err) {
    mount(target, h("div", { class: "notice preview-unavailable" }, `No preview: ${err.message}`));
    return;
  }
  const where = info.path ? h("p", { class: "muted" }, "File: ", h("span", { class: "mono" }, info.path)) : null;
  const download = h("a", { class: "download", href: contentUrl(id, info.path, { download: "true" }) }, `Download${info.size ? ` (${fmtBytes(info.size)})` : ""}`);
  const cut = info.truncated && info.kind !== "image" && info.kind !== "binary"
    ? h("p", { class: "notice" }, `Preview shows the first ${fmtBytes(info.limit_bytes)} of ${fmtBytes(info.size)}.`) : null;
  let view;
  switch (info.kind) {
    case "text": view = h("pre", { class: "preview preview-text" }, info.text); break;
    case "csv": view = csvTable(info.text); break;
    case "markdown":
    case "html":
      view = h("iframe", {
        class: "preview", sandbox: "", referrerpolicy: "no-referrer", title: `${info.kind} preview`,
        src: `${UI_API}/artifacts/${enc(id)}/render${info.path ? `?path=${enc(info.path)}` : ""}`,
      });
      break;
    case "image": view = h("img", { class: "preview", alt: artifact.name, src: contentUrl(id, info.path) }); break;
    case "empty": view = h("p", { class: "muted" }, "The file is empty."); break;
    case "directory":
      view = h("table", { class: "list dir-listing" }, h("tbody", {}, info.entries.map((e) => h("tr", {},
        h("td", { class: "mono" }, h("a", { href: "#", onclick: (ev) => { ev.preventDefault(); renderPreview(target, artifact, e.path); } }, e.path)),
        h("td", {}, fmtBytes(e.size)), h("td", {}, h("a", { href: contentUrl(id, e.path, { download: "true" }) }, "download"))))));
      break;
    default:
      view = h("p", { class: "muted" }, info.truncated ? "This file is too large to show inline; download it instead." : "Binary file: no preview; download it instead.");
  }
  mount(target, storeLine(info.store_session_info), where, cut, view, info.kind === "directory" ? null : h("p", {}, download));
}

// Upstream's store_session_info: which provider settings wrote the artifact (never secrets).
function storeLine(session) {
  if (!session || !session.Provider) return null;
  const params = session.Params || {};
  const creds = params.fromEnv === "true" ? "credentials from the server's environment"
    : params.secretName ? `credentials from secret ${params.secretName}` : "";
  const parts = [session.Provider, params.endpoint && `endpoint ${params.endpoint}`, params.region && `region ${params.region}`, creds];
  return h("p", { class: "muted store-session" }, "Object store: ", parts.filter(Boolean).join(" · "));
}

function metricPreview(artifact) {
  const meta = artifact.metadata || {};
  if (artifact.type === "Metric") return h("p", {}, "Value: ", h("strong", { class: "metric-value" }, fmtValue(artifact.number_value)));
  const { roc, pr } = curvesOf(meta);
  const cm = confusionMatrix(meta);
  const charts = [];
  if (cm) charts.push(h("div", { class: "chart-card" }, h("h3", {}, "Confusion matrix"), cm));
  if (roc.length) charts.push(curveChart([{ name: artifact.name, points: roc }], { title: "ROC curve", xLabel: "false positive rate", yLabel: "true positive rate (recall)", diagonal: true }));
  if (pr.length) charts.push(curveChart([{ name: artifact.name, points: pr }], { title: "Precision–recall", xLabel: "recall", yLabel: "precision" }));
  return charts.length ? h("div", { class: "charts" }, charts) : null;
}

async function renderLinks(target, id) {
  try {
    const data = await api(`${API}/artifact_tasks`, { params: { artifact_ids: id, page_size: 200 } });
    const links = data.artifact_tasks || [];
    mount(target, links.length ? h("table", { class: "list links" },
      h("thead", {}, h("tr", {}, h("th", {}, "Link"), h("th", {}, "Key"), h("th", {}, "Task"), h("th", {}, "Produced by"), h("th", {}, "Run"))),
      h("tbody", {}, links.map((l) => h("tr", {},
        h("td", {}, l.type), h("td", {}, l.key),
        h("td", { class: "mono" }, h("a", { href: `#/runs/${l.run_id}?task=${l.task_id}` }, l.task_id.slice(0, 8))),
        h("td", {}, (l.producer && l.producer.task_name) || ""),
        h("td", {}, h("a", { href: `#/runs/${l.run_id}` }, l.run_id.slice(0, 8)))))))
      : h("p", { class: "muted" }, "No task links."),
    data.next_page_token ? h("p", { class: "muted" }, `First 200 of ${data.total_size} links.`) : null);
  } catch (err) {
    mount(target, errorBox(err, "Could not load links"));
  }
}

export async function renderOne(root, [artifactId]) {
  let artifact;
  try {
    artifact = await api(`${API}/artifacts/${enc(artifactId)}`);
  } catch (err) {
    mount(root, h("h1", {}, "Artifact"), errorBox(err, `Artifact ${artifactId} cannot be shown`), h("p", {}, h("a", { href: "#/artifacts" }, "Back to artifacts")));
    return undefined;
  }
  const preview = h("div", { class: "artifact-preview" });
  const links = h("div", {});
  const lineage = h("div", { class: "lineage" });
  const metadata = artifact.metadata && Object.keys(artifact.metadata).length
    ? h("pre", { class: "preview metadata" }, JSON.stringify(artifact.metadata, null, 2)) : h("p", { class: "muted" }, "none");
  mount(root,
    h("h1", {}, h("span", { class: "artifact-name" }, artifact.name || artifact.artifact_id), h("span", { class: "badge" }, artifact.type)),
    h("table", { class: "kv" }, h("tbody", {},
      [["Artifact ID", h("span", { class: "mono" }, artifact.artifact_id)], ["Type", artifact.type], ["URI", h("span", { class: "mono" }, artifact.uri || "–")],
        ["Created", fmtTime(artifact.created_at)], artifact.description && ["Description", artifact.description],
        artifact.number_value !== undefined && ["Value", fmtValue(artifact.number_value)]]
        .filter(Boolean).map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, v))))),
    h("h2", {}, "Preview"), preview,
    h("h2", {}, "Metadata"), metadata,
    h("h2", {}, "Producers and consumers"), links,
    h("h2", {}, "Lineage"), lineage);
  const metric = ["Metric", "ClassificationMetric", "SlicedClassificationMetric"].includes(artifact.type) ? metricPreview(artifact) : null;
  if (metric) mount(preview, metric);
  else if (artifact.uri) renderPreview(preview, artifact);
  else mount(preview, h("p", { class: "muted" }, "This artifact has no file; its value is in its metadata."));
  renderLinks(links, artifact.artifact_id);
  const graph = new LineageGraph(lineage, { kind: "ARTIFACT", id: artifact.artifact_id, name: artifact.name, type: artifact.type });
  graph.expand("ARTIFACT", artifact.artifact_id);
  return undefined;
}

// ---------------------------------------------------------------- lineage

const NODE_W = 180;
const NODE_H = 44;

/** Lineage drawn left (upstream) to right (downstream); a click on a node loads its next hop. */
export class LineageGraph {
  constructor(container, root) {
    this.container = container;
    this.root = root;
    this.nodes = new Map([[root.id, { ...root, hop: 0 }]]);
    this.edges = new Map();
    this.expanded = new Set();
    this.more = new Map(); // node id -> next page token
    this.status = h("div", { class: "muted lineage-status" });
    this.box = h("div", { class: "lineage-wrap" });
    this.info = h("div", { class: "lineage-info" });
    mount(container, h("p", { class: "muted" }, "Click a node to add its next hop; links open the task or artifact."), this.status, this.box, this.info);
  }

  async expand(kind, id, pageToken = "") {
    const path = kind === "TASK" ? `${API}/tasks/${enc(id)}/lineage` : `${API}/artifacts/${enc(id)}/lineage`;
    this.status.textContent = "Loading lineage…";
    let data;
    try {
      data = await api(path, { params: { direction: "BOTH", max_hops: 1, page_size: 100, page_token: pageToken } });
    } catch (err) {
      this.status.textContent = "";
      mount(this.info, errorBox(err, "Lineage is not available"));
      return;
    }
    this.expanded.add(id);
    for (const node of data.nodes || []) {
      if (!this.nodes.has(node.id)) this.nodes.set(node.id, node);
    }
    for (const edge of data.edges || []) this.edges.set(`${edge.source_id}>${edge.target_id}`, edge);
    if (data.next_page_token) this.more.set(id, data.next_page_token);
    else this.more.delete(id);
    this.status.textContent = `${this.nodes.size} nodes, ${this.edges.size} edges`;
    this.draw();
  }

  draw() {
    const g = new dagre.graphlib.Graph();
    g.setGraph({ rankdir: "LR", nodesep: 16, ranksep: 50, marginx: 8, marginy: 8 });
    g.setDefaultEdgeLabel(() => ({}));
    for (const node of this.nodes.values()) g.setNode(node.id, { width: NODE_W, height: NODE_H });
    for (const edge of this.edges.values()) {
      if (this.nodes.has(edge.source_id) && this.nodes.has(edge.target_id)) g.setEdge(edge.source_id, edge.target_id);
    }
    dagre.layout(g);
    const size = g.graph();
    const svg = s("svg", { class: "lineage", width: size.width, height: size.height, role: "img", "aria-label": "lineage graph" });
    svg.append(s("defs", {}, s("marker", { id: "larrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" },
      s("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" }))));
    for (const e of g.edges()) {
      const points = g.edge(e).points;
      svg.append(s("path", { class: "edge", d: points.map((p, i) => `${i ? "L" : "M"}${p.x},${p.y}`).join(" "), "marker-end": "url(#larrow)" }));
    }
    for (const node of this.nodes.values()) {
      const p = g.node(node.id);
      const label = node.kind === "TASK" ? (node.display_name || node.name || node.id) : (node.name || node.id);
      const sub = node.kind === "TASK" ? `task · ${(node.state || "").toLowerCase()}` : `${node.type || "artifact"}`;
      const canExpand = !this.expanded.has(node.id) || this.more.has(node.id);
      const el = s("g", {
        class: `lnode kind-${node.kind}${node.id === this.root.id ? " root" : ""}`, transform: `translate(${p.x - NODE_W / 2},${p.y - NODE_H / 2})`,
        dataset: { id: node.id, kind: node.kind },
      },
      s("rect", { width: NODE_W, height: NODE_H, rx: node.kind === "TASK" ? 8 : 2 }),
      s("text", { x: 8, y: 18, "font-weight": 600 }, label.length > 24 ? `${label.slice(0, 23)}…` : label),
      s("text", { x: 8, y: 34, fill: "#656d76" }, sub),
      canExpand ? s("text", { class: "more", x: NODE_W - 16, y: 18 }, "+") : null,
      s("title", {}, `${node.kind} ${label}${canExpand ? " (click to expand)" : ""}`));
      el.addEventListener("click", () => {
        this.showInfo(node);
        if (!this.expanded.has(node.id)) this.expand(node.kind, node.id);
        else if (this.more.has(node.id)) this.expand(node.kind, node.id, this.more.get(node.id));
      });
      svg.append(el);
    }
    mount(this.box, svg);
  }

  showInfo(node) {
    const link = node.kind === "TASK"
      ? h("a", { href: `#/runs/${node.run_id}?task=${node.id}` }, "Open the task in its run")
      : h("a", { href: `#/artifacts/${node.id}` }, "Open the artifact");
    mount(this.info, h("p", {}, `${node.kind === "TASK" ? "Task" : "Artifact"} `, h("strong", {}, node.display_name || node.name || node.id), " · ", link));
  }
}
