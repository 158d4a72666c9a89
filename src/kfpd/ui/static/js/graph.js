// The pipeline graph: the IR's DAGs with the run's task states laid over them.
//
// Each DAG level is laid out on its own with dagre, innermost first, so an expanded group is an
// ordinary (big) node of its parent's layout and edges to groups just work. Loops are collapsed
// by default and show per-state iteration counts; expanded, they show one iteration's body with
// a picker. Polls only repaint states in place; a layout is computed again only when what is
// visible changes (expand, collapse, another iteration).
import dagre from "../vendor/dagre/dagre.esm.js";
import { s, clear } from "./dom.js";

const LEAF_W = 190;
const LEAF_H = 46;
const PAD = 14;
const HEADER = 34;
const ITER_BAR = 40;
const EXPAND_LIMIT = 60; // groups with more spec nodes than this start collapsed
const ITER_SQUARES = 30;
const DAGRE_LIMIT = 150; // bigger levels use layeredLayout()
const MAX_ROW = 12; // nodes per row in layeredLayout()

const GROUP_KINDS = new Set(["dag", "loop", "condition", "branches", "exit-handler"]);
const KIND_LABEL = {
  runtime: "task", importer: "importer", dag: "pipeline", loop: "loop", condition: "condition",
  branches: "condition branches", "exit-handler": "exit handler",
};
const FINAL = new Set(["SUCCEEDED", "FAILED", "SKIPPED", "CACHED", "CANCELED"]);

export function unwrapSpec(spec) {
  if (spec && !spec.root && spec.pipeline_spec) return spec.pipeline_spec;
  return spec || {};
}

function describeIterator(task) {
  const it = task.parameterIterator || task.artifactIterator;
  if (!it) return "";
  const items = it.items || {};
  if (items.raw !== undefined) return `over ${typeof items.raw === "string" ? items.raw : JSON.stringify(items.raw)}`;
  if (items.inputParameter) return `over ${items.inputParameter}`;
  if (items.inputArtifact) return `over ${items.inputArtifact}`;
  return "";
}

/** The spec's DAG tree: {key, path, label, kind, deps, children?, condition, ...}. */
export function buildSpecModel(rawSpec) {
  const spec = unwrapSpec(rawSpec);
  const components = spec.components || {};
  const executors = (spec.deploymentSpec && spec.deploymentSpec.executors) || {};

  function level(dag, basePath) {
    const tasks = (dag && dag.tasks) || {};
    return Object.keys(tasks).map((key) => {
      const t = tasks[key] || {};
      const compName = (t.componentRef && t.componentRef.name) || "";
      const comp = components[compName] || {};
      const trigger = t.triggerPolicy || {};
      const node = {
        key,
        path: `${basePath}.${key}`,
        label: (t.taskInfo && t.taskInfo.name) || key,
        component: compName,
        deps: (t.dependentTasks || []).filter((d) => d in tasks && d !== key),
        condition: trigger.condition || "",
        exitTask: trigger.strategy === "ALL_UPSTREAM_TASKS_COMPLETED",
        children: null,
      };
      if (comp.dag) {
        if (t.parameterIterator || t.artifactIterator) node.kind = "loop";
        else if (key.startsWith("exit-handler")) node.kind = "exit-handler";
        else if (key.startsWith("condition-branches")) node.kind = "branches";
        else if (key.startsWith("condition") || node.condition) node.kind = "condition";
        else node.kind = "dag";
        node.iterator = describeIterator(t);
        node.children = level(comp.dag, node.path);
      } else {
        const executor = executors[comp.executorLabel] || {};
        node.kind = executor.importer ? "importer" : "runtime";
        node.image = (executor.container && executor.container.image) || "";
      }
      return node;
    });
  }

  const root = {
    key: "root", path: "root", kind: "root", deps: [],
    label: (spec.pipelineInfo && spec.pipelineInfo.name) || "pipeline",
    children: level(spec.root && spec.root.dag, "root"),
  };
  return root;
}

function specSize(node) {
  if (!node.children) return 1;
  return node.children.reduce((n, c) => n + specSize(c), 1);
}

/** The run's tasks indexed by parent, for matching spec nodes to task rows. */
class RunIndex {
  constructor(tasks) {
    this.byId = new Map();
    this.byParent = new Map();
    this.root = null;
    for (const t of tasks || []) {
      this.byId.set(t.id, t);
      if (!t.parent) {
        if (t.type === "ROOT" && !this.root) this.root = t;
        continue;
      }
      let list = this.byParent.get(t.parent);
      if (!list) this.byParent.set(t.parent, (list = []));
      list.push(t);
    }
  }

  children(id) {
    return (id && this.byParent.get(id)) || [];
  }

  child(instanceId, name) {
    return this.children(instanceId).find((t) => t.name === name && t.type !== "LOOP_ITERATION") || null;
  }

  iterations(loopTask) {
    if (!loopTask) return [];
    return this.children(loopTask.id)
      .filter((t) => t.type === "LOOP_ITERATION")
      .sort((a, b) => (a.iteration ?? 0) - (b.iteration ?? 0));
  }
}

/** An IR trigger condition as people write it: pipeline channels by their task output name. */
export function readableCondition(expr) {
  return expr
    .replace(/inputs\.parameter_values\[['"]pipelinechannel--([^'"]+)['"]\]/g, "$1")
    .replace(/inputs\.parameter_values\[['"]([^'"]+)['"]\]/g, "$1")
    .replace(/int\(([^()]+)\)/g, "$1");
}

function iterationText(node) {
  const { selected, count, current } = node.loop;
  const item = current && current.item !== undefined ? `: ${current.item}` : "";
  return `iteration ${selected} of ${count}${item}`;
}

function truncate(text, width) {
  const max = Math.max(4, Math.floor((width - 34) / 7));
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function stateCss(state) {
  switch (state) {
    case "RUNNING": return "running";
    case "SUCCEEDED": return "succeeded";
    case "FAILED": return "failed";
    case "SKIPPED": return "skipped";
    case "CACHED": return "cached";
    case "CANCELED": return "canceled";
    case "NOT_RUN": return "notrun";
    default: return "pending";
  }
}

export class GraphView {
  /**
   * @param container element to draw into
   * @param spec the pipeline spec (IR)
   * @param options.live show task states (run page) rather than component kinds (pipeline page)
   * @param options.onSelect called with the selected view node
   */
  constructor(container, spec, { live = true, onSelect = () => {} } = {}) {
    this.container = container;
    this.model = buildSpecModel(spec);
    this.live = live;
    this.onSelect = onSelect;
    this.expanded = new Map(); // view id -> bool
    this.iterSel = new Map(); // loop view id -> selected iteration index
    this.index = new RunIndex([]);
    this.runState = null;
    this.signature = null;
    this.elements = new Map(); // view id -> <g>
    this.viewNodes = new Map(); // view id -> view node
    this.selectedVid = null;
    this.scale = 1;
    this.layoutCount = 0;
  }

  /** Take the run's tasks (compact rows) and draw; cheap when nothing visible moved. */
  update(tasks, runState) {
    this.index = new RunIndex(tasks);
    this.runState = runState;
    this.redraw();
  }

  redraw() {
    const top = this.buildLevel(this.model, this.index.root ? this.index.root.id : null, "root");
    const signature = this.signatureOf(top);
    this.viewNodes = new Map();
    this.collect(top);
    if (signature !== this.signature || !this.svg) {
      this.layout(top);
      this.render(top);
      this.signature = signature;
      this.top = top;
    } else {
      for (const node of this.viewNodes.values()) {
        const el = this.elements.get(node.vid);
        if (el) this.paint(el, node);
      }
    }
  }

  collect(level) {
    for (const node of level.nodes) {
      this.viewNodes.set(node.vid, node);
      if (node.inner) this.collect(node.inner);
    }
  }

  notRunState() {
    return this.live && this.runState && ["SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"].includes(this.runState)
      ? "NOT_RUN" : "PENDING";
  }

  isExpanded(vid, spec) {
    if (this.expanded.has(vid)) return this.expanded.get(vid);
    if (spec.kind === "loop") return false;
    return specSize(spec) <= EXPAND_LIMIT;
  }

  buildLevel(group, instanceId, parentVid) {
    const nodes = [];
    const byKey = new Map();
    for (const spec of group.children || []) {
      const vid = `${parentVid}/${spec.key}`;
      const task = this.index.child(instanceId, spec.key);
      const node = { vid, spec, task, state: task ? task.state : this.notRunState(), inner: null };
      if (GROUP_KINDS.has(spec.kind)) {
        node.group = true;
        node.expanded = this.isExpanded(vid, spec);
        let innerInstance = task ? task.id : null;
        if (spec.kind === "loop") {
          const iterations = this.index.iterations(task);
          const count = task && task.iteration_count !== undefined ? task.iteration_count : iterations.length;
          const counts = {};
          for (const it of iterations) counts[it.state] = (counts[it.state] || 0) + 1;
          let selected = this.iterSel.get(vid);
          if (selected === undefined) {
            const busy = iterations.find((it) => it.state === "RUNNING" || it.state === "FAILED");
            selected = busy ? busy.iteration : 0;
          }
          selected = Math.max(0, Math.min(selected, Math.max(0, count - 1)));
          // Once the body is on screen the shown iteration stays put until the user moves it.
          if (node.expanded) this.iterSel.set(vid, selected);
          const current = iterations.find((it) => it.iteration === selected) || null;
          node.loop = { count, counts, selected, iterations, current };
          innerInstance = current ? current.id : null;
        }
        if (node.expanded) node.inner = this.buildLevel(spec, innerInstance, node.loop ? `${vid}#${node.loop.selected}` : vid);
      }
      nodes.push(node);
      byKey.set(spec.key, node);
    }
    const edges = [];
    for (const node of nodes) {
      for (const dep of node.spec.deps) {
        if (byKey.has(dep)) edges.push({ from: byKey.get(dep).vid, to: node.vid });
      }
    }
    return { nodes, edges, vid: parentVid };
  }

  signatureOf(level) {
    return level.nodes
      .map((n) => `${n.vid}${n.group ? (n.expanded ? "+" : "-") : ""}${n.loop && n.inner ? `#${n.loop.count}` : ""}${n.inner ? `{${this.signatureOf(n.inner)}}` : ""}`)
      .join(",");
  }

  layout(level) {
    this.layoutCount += 1;
    for (const node of level.nodes) {
      if (node.inner) {
        this.layout(node.inner);
        node.w = Math.max(LEAF_W + 30, node.inner.width + 2 * PAD);
        node.h = node.inner.height + HEADER + PAD + (node.loop ? ITER_BAR : 0);
      } else {
        node.w = node.group ? LEAF_W + 20 : LEAF_W;
        node.h = node.group ? LEAF_H + 8 : LEAF_H;
      }
    }
    if (!level.nodes.length) {
      level.width = LEAF_W;
      level.height = 24;
      level.empty = true;
      return;
    }
    if (level.nodes.length > DAGRE_LIMIT) {
      layeredLayout(level);
      return;
    }
    const g = new dagre.graphlib.Graph();
    g.setGraph({ rankdir: "TB", nodesep: 22, ranksep: 34, marginx: 6, marginy: 6 });
    g.setDefaultEdgeLabel(() => ({}));
    for (const node of level.nodes) g.setNode(node.vid, { width: node.w, height: node.h });
    for (const edge of level.edges) g.setEdge(edge.from, edge.to);
    dagre.layout(g);
    for (const node of level.nodes) {
      const placed = g.node(node.vid);
      node.x = placed.x - node.w / 2;
      node.y = placed.y - node.h / 2;
    }
    for (const edge of level.edges) edge.points = g.edge(edge.from, edge.to).points;
    const graph = g.graph();
    level.width = graph.width;
    level.height = graph.height;
  }

  render(top) {
    const container = this.container;
    clear(container);
    this.elements = new Map();
    const width = Math.max(top.width, 200);
    const height = Math.max(top.height, 60);
    this.svg = s("svg", {
      class: "graph", width: width * this.scale, height: height * this.scale,
      viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "pipeline graph",
    });
    this.svg.append(
      s("defs", {}, s("marker", {
        id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse",
      }, s("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" }))),
    );
    const body = s("g", {});
    this.drawLevel(body, top);
    if (!top.nodes.length) body.append(s("text", { x: 10, y: 30, class: "sub" }, "This pipeline spec has no tasks."));
    this.svg.append(body);
    this.svg.addEventListener("click", (event) => this.onClick(event));
    container.append(this.svg);
    this.size = { width, height };
    if (this.selectedVid && this.elements.has(this.selectedVid)) {
      this.elements.get(this.selectedVid).classList.add("selected");
    }
  }

  drawLevel(parent, level) {
    if (level.empty) {
      parent.append(s("text", { x: 6, y: 16, class: "sub" }, "(no tasks)"));
      return;
    }
    for (const edge of level.edges) {
      const d = edge.points.map((p, i) => `${i ? "L" : "M"}${p.x.toFixed(1)},${p.y.toFixed(1)}`).join(" ");
      parent.append(s("path", { class: "edge", d, "marker-end": "url(#arrow)" }));
    }
    for (const node of level.nodes) parent.append(this.drawNode(node));
  }

  drawNode(node) {
    const spec = node.spec;
    const g = s("g", {
      class: "gnode", transform: `translate(${node.x},${node.y})`,
      dataset: { vid: node.vid, key: spec.path, name: spec.key, kind: spec.kind },
    });
    const title = s("title", {});
    g.append(title);
    if (node.inner) {
      g.append(s("rect", { class: "gbox", width: node.w, height: node.h, rx: 8 }));
      g.append(s("circle", { class: "dot", cx: 14, cy: 17, r: 5 }));
      g.append(s("text", { class: "label", x: 26, y: 17 }, truncate(spec.label, node.w - 80)));
      g.append(s("text", { class: "sub", x: 26, y: 30 }));
      g.append(this.toggleButton(node));
      if (node.loop) g.append(this.iterationBar(node));
      const inner = s("g", { transform: `translate(${PAD},${HEADER + (node.loop ? ITER_BAR : 0)})` });
      this.drawLevel(inner, node.inner);
      g.append(inner);
    } else {
      g.append(s("rect", { class: "box", width: node.w, height: node.h, rx: 7 }));
      g.append(s("circle", { class: "dot", cx: 14, cy: node.h / 2, r: 5 }));
      g.append(s("text", { class: "label", x: 26, y: 19 }, truncate(spec.label + (spec.exitTask ? " (exit)" : ""), node.w)));
      g.append(s("text", { class: "sub", x: 26, y: 35 }));
      if (node.group) g.append(this.toggleButton(node));
    }
    this.elements.set(node.vid, g);
    this.paint(g, node);
    return g;
  }

  toggleButton(node) {
    return s("g", { class: "toggle", transform: `translate(${node.w - 26},6)`, dataset: { action: "toggle" } },
      s("rect", { width: 20, height: 20, rx: 4 }),
      s("text", { x: 10, y: 15, "text-anchor": "middle" }, node.expanded ? "−" : "+"),
      s("title", {}, node.expanded ? "collapse" : "expand"));
  }

  iterationBar(node) {
    const { count, selected, iterations } = node.loop;
    const bar = s("g", { class: "iterbar", transform: `translate(${PAD},${HEADER - 4})` });
    bar.append(s("text", { class: "iter-nav", x: 0, y: 14, dataset: { action: "prev" } }, "◀"));
    const label = truncate(iterationText(node), node.w - 2 * PAD - 10);
    bar.append(s("text", { class: "iter-label", x: 16, y: 14 }, label));
    const labelEnd = Math.min(node.w - 2 * PAD - 14, 24 + label.length * 6.6);
    bar.append(s("text", { class: "iter-nav", x: labelEnd, y: 14, dataset: { action: "next" } }, "▶"));
    const byIndex = new Map(iterations.map((it) => [it.iteration, it]));
    const room = Math.max(1, Math.floor((node.w - 2 * PAD) / 9));
    const shown = Math.min(count, ITER_SQUARES, room);
    const start = Math.max(0, Math.min(selected - Math.floor(shown / 2), count - shown));
    for (let i = 0; i < shown; i += 1) {
      const index = start + i;
      const it = byIndex.get(index);
      const css = stateCss(it ? it.state : "PENDING");
      bar.append(s("rect", {
        class: `iter st-${css}${index === selected ? " current" : ""}`, x: i * 9, y: 21, width: 7, height: 11, rx: 1,
        dataset: { action: "iteration", iteration: index },
      }, s("title", {}, `iteration ${index}${it && it.item !== undefined ? ` = ${it.item}` : ""}: ${it ? it.state : "not started"}`)));
    }
    return bar;
  }

  /** Set a node's state colour and texts; used on first draw and on every poll. */
  paint(g, node) {
    const spec = node.spec;
    const state = node.state;
    const css = this.live ? stateCss(state) : "spec";
    g.setAttribute("class", `gnode kind-${spec.kind} st-${css}${node.group ? " group" : ""}${node.inner ? " expanded" : ""}${node.vid === this.selectedVid ? " selected" : ""}`);
    g.dataset.state = this.live ? state : "";
    if (node.task) g.dataset.taskId = node.task.id;
    else delete g.dataset.taskId;
    const sub = g.querySelector(":scope > text.sub");
    let text;
    if (!this.live) {
      text = KIND_LABEL[spec.kind] || spec.kind;
      if (spec.kind === "loop" && spec.iterator) text += ` ${spec.iterator}`;
      if (spec.condition) text = `if ${readableCondition(spec.condition)}`;
    } else if (node.loop && node.task) {
      const { count, counts } = node.loop;
      const done = (counts.SUCCEEDED || 0) + (counts.CACHED || 0);
      const parts = [`${count} iterations`];
      if (done) parts.push(`${done} ✓`);
      if (counts.RUNNING) parts.push(`${counts.RUNNING} running`);
      if (counts.FAILED) parts.push(`${counts.FAILED} failed`);
      text = parts.join(" · ");
    } else {
      text = state === "NOT_RUN" ? "not run" : state.toLowerCase();
      if (spec.condition) text = `if ${readableCondition(spec.condition)} · ${text}`;
      else if (node.group) text = `${KIND_LABEL[spec.kind]} · ${text}`;
    }
    if (sub) sub.textContent = truncate(text, node.w + 8);
    const title = g.querySelector(":scope > title");
    if (title) {
      const lines = [`${spec.label} (${KIND_LABEL[spec.kind] || spec.kind})`];
      if (this.live) lines.push(`state: ${state}`);
      if (spec.condition) lines.push(`condition: ${readableCondition(spec.condition)}`, `(IR: ${spec.condition})`);
      if (spec.iterator) lines.push(`loop ${spec.iterator}`);
      title.textContent = lines.join("\n");
    }
    if (node.loop && node.inner) {
      const label = g.querySelector(":scope > .iterbar .iter-label");
      if (label) label.textContent = truncate(iterationText(node), node.w - 2 * PAD - 10);
      const byIndex = new Map(node.loop.iterations.map((it) => [it.iteration, it]));
      g.querySelectorAll(":scope > .iterbar rect.iter").forEach((rect) => {
        const it = byIndex.get(Number(rect.dataset.iteration));
        const cur = Number(rect.dataset.iteration) === node.loop.selected ? " current" : "";
        rect.setAttribute("class", `iter st-${stateCss(it ? it.state : "PENDING")}${cur}`);
      });
    }
  }

  onClick(event) {
    const g = event.target.closest(".gnode");
    if (!g) return;
    const node = this.viewNodes.get(g.dataset.vid);
    if (!node) return;
    const action = event.target.closest("[data-action]");
    if (action && g.contains(action) && action.closest(".gnode") === g) {
      event.stopPropagation();
      const kind = action.dataset.action;
      if (kind === "toggle") this.expanded.set(node.vid, !node.expanded);
      else if (node.loop && kind === "prev") this.iterSel.set(node.vid, Math.max(0, node.loop.selected - 1));
      else if (node.loop && kind === "next") this.iterSel.set(node.vid, Math.min(node.loop.count - 1, node.loop.selected + 1));
      else if (node.loop && kind === "iteration") this.iterSel.set(node.vid, Number(action.dataset.iteration));
      this.redraw();
      return;
    }
    this.select(node.vid);
  }

  select(vid) {
    const previous = this.selectedVid && this.elements.get(this.selectedVid);
    if (previous) previous.classList.remove("selected");
    this.selectedVid = vid;
    const el = vid && this.elements.get(vid);
    if (el) el.classList.add("selected");
    const node = vid && this.viewNodes.get(vid);
    if (node) this.onSelect(node);
  }

  /** The view node drawn for a task id, if it is visible. */
  nodeForTask(taskId) {
    for (const node of this.viewNodes.values()) if (node.task && node.task.id === taskId) return node;
    return null;
  }

  /** Zoom by a factor, or "fit" the container's width. */
  zoom(factor) {
    if (!this.svg || !this.size) return;
    this.scale = Math.max(0.2, Math.min(2.5, factor === "fit"
      ? Math.min(1, (this.container.clientWidth - 8) / this.size.width)
      : this.scale * factor));
    this.svg.setAttribute("width", this.size.width * this.scale);
    this.svg.setAttribute("height", this.size.height * this.scale);
  }
}

/**
 * A linear-time layered layout for big DAG levels (dagre's crossing minimisation is too slow
 * past a few hundred nodes): rank = longest path from a source, order in a rank by the mean
 * position of its parents, rows wrapped at MAX_ROW nodes, straight edges.
 */
function layeredLayout(level) {
  const byVid = new Map(level.nodes.map((n) => [n.vid, n]));
  const parents = new Map(level.nodes.map((n) => [n.vid, []]));
  const children = new Map(level.nodes.map((n) => [n.vid, []]));
  for (const e of level.edges) {
    parents.get(e.to).push(e.from);
    children.get(e.from).push(e.to);
  }
  const rank = new Map();
  const pending = new Map(level.nodes.map((n) => [n.vid, parents.get(n.vid).length]));
  const queue = level.nodes.filter((n) => pending.get(n.vid) === 0).map((n) => n.vid);
  for (const vid of queue) rank.set(vid, 0);
  for (let i = 0; i < queue.length; i += 1) {
    const vid = queue[i];
    for (const child of children.get(vid)) {
      rank.set(child, Math.max(rank.get(child) || 0, rank.get(vid) + 1));
      pending.set(child, pending.get(child) - 1);
      if (pending.get(child) === 0) queue.push(child);
    }
  }
  for (const n of level.nodes) if (!rank.has(n.vid)) rank.set(n.vid, 0); // cycles: top row
  const ranks = [];
  for (const n of level.nodes) (ranks[rank.get(n.vid)] ||= []).push(n);
  const slot = new Map();
  const gapX = 22;
  const gapY = 34;
  let y = 6;
  let width = 0;
  for (const row of ranks) {
    if (!row) continue;
    const key = (n) => {
      const ps = parents.get(n.vid);
      return ps.length ? ps.reduce((sum, p) => sum + (slot.get(p) ?? 0), 0) / ps.length : 0;
    };
    row.sort((a, b) => key(a) - key(b));
    for (let start = 0; start < row.length; start += MAX_ROW) {
      const chunk = row.slice(start, start + MAX_ROW);
      let x = 6;
      let height = 0;
      chunk.forEach((n, i) => {
        n.x = x;
        n.y = y;
        slot.set(n.vid, start + i);
        x += n.w + gapX;
        height = Math.max(height, n.h);
      });
      width = Math.max(width, x);
      y += height + gapY;
    }
  }
  for (const e of level.edges) {
    const a = byVid.get(e.from);
    const b = byVid.get(e.to);
    e.points = [{ x: a.x + a.w / 2, y: a.y + a.h }, { x: b.x + b.w / 2, y: b.y }];
  }
  level.width = width + 6;
  level.height = y;
}

export function isFinalState(state) {
  return FINAL.has(state);
}
