// Pipelines: list, one pipeline's versions, and a version's graph drawn from its IR.
import { API, api, errorBox, fmtTime, kfpFilter, pipelineTargets, session } from "../api.js";
import { uploadPipelineDialog } from "../dialogs.js";
import { h, mount } from "../dom.js";
import { GraphView } from "../graph.js";
import { pagedTable } from "../list.js";
import { setQuery } from "../nav.js";
import { openRunDialog } from "../runform.js";

const enc = encodeURIComponent;

export async function renderList(root) {
  const search = h("input", { type: "search", placeholder: "name contains…", "aria-label": "filter by name" });
  const upload = pipelineTargets().length ? h("button", { class: "primary", dataset: { action: "upload-pipeline" }, onclick: async () => {
    const created = await uploadPipelineDialog();
    if (created) location.hash = `#/pipelines/${created.pipeline_id}`;
  } }, "Upload pipeline") : null;
  mount(root, h("h1", {}, "Pipelines"), h("div", { class: "toolbar" }, search, upload));
  // Multi-user: the picked namespace's own pipelines, then the shared ones (namespace ""), as
  // upstream's Private and Shared tabs; the server lists one namespace per call.
  const sections = session.multiUser
    ? [
      ...(session.current ? [{ namespace: session.current, title: `Namespace ${session.current}`, kind: "namespace" }] : []),
      { namespace: "", title: "Shared", kind: "shared" },
    ]
    : [{ namespace: undefined, title: "", kind: "all" }];
  const tables = sections.map((section) => {
    const holder = h("section", { class: "pipeline-section", dataset: { pipelines: section.kind } });
    if (section.title) root.append(h("h2", {}, section.title));
    root.append(holder);
    return pagedTable(holder, {
      className: "pipelines",
      empty: section.namespace === ""
        ? "No shared pipelines."
        : "No pipelines yet. Upload one here, or with kfp.Client().upload_pipeline(...).",
      fetchPage: async (token) => {
        const data = await api(`${API}/pipelines`, { params: {
          page_size: 20, page_token: token, sort_by: "created_at desc", namespace: section.namespace,
          filter: kfpFilter([search.value.trim() && { key: "display_name", operation: "IS_SUBSTRING", string_value: search.value.trim() }]),
        } });
        return { items: data.pipelines, total_size: data.total_size, next_page_token: data.next_page_token };
      },
      columns: [
        { title: "Name", cell: (p) => h("a", { href: `#/pipelines/${p.pipeline_id}` }, p.display_name || p.name) },
        { title: "Description", cell: (p) => p.description || "" },
        { title: "Created", cell: (p) => fmtTime(p.created_at) },
      ],
    });
  });
  let typing;
  search.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(() => tables.forEach((t) => t.reload()), 300); });
  return () => { clearTimeout(typing); tables.forEach((t) => t.stop()); };
}

export async function renderOne(root, [pipelineId], query) {
  let pipeline;
  try {
    pipeline = await api(`${API}/pipelines/${enc(pipelineId)}`);
  } catch (err) {
    mount(root, h("h1", {}, "Pipeline"), errorBox(err, `Pipeline ${pipelineId} cannot be shown`));
    return undefined;
  }
  const versions = h("div", {});
  const versionView = h("div", { class: "version-view" });
  mount(root, h("h1", {}, pipeline.display_name || pipeline.name),
    pipeline.description ? h("p", {}, pipeline.description) : null,
    h("h2", {}, "Versions"), versions, versionView);
  let shown = query.get("version") || "";

  async function showVersion(versionId) {
    shown = versionId;
    setQuery({ version: versionId });
    mount(versionView, h("p", { class: "muted" }, "Loading version…"));
    let version;
    try {
      version = await api(`${API}/pipelines/${enc(pipelineId)}/versions/${enc(versionId)}`);
    } catch (err) {
      mount(versionView, errorBox(err, "Could not load the version"));
      return;
    }
    const graphBox = h("div", { class: "graph-wrap pipeline-graph" });
    mount(versionView,
      h("h2", {}, `Version: ${version.display_name || version.name}`,
        h("button", { class: "primary", onclick: async () => {
          const created = await openRunDialog({ title: `New run of ${pipeline.display_name}`, spec: version.pipeline_spec,
            versionRef: { pipeline_id: pipelineId, pipeline_version_id: versionId },
            defaults: { display_name: `${pipeline.display_name} ${new Date().toISOString().slice(0, 19).replace("T", " ")}` } });
          if (created) location.hash = `#/runs/${created.run_id}`;
        } }, "Create run"),
        h("button", { onclick: async () => {
          const created = await openRunDialog({ title: `New recurring run of ${pipeline.display_name}`, spec: version.pipeline_spec,
            versionRef: { pipeline_id: pipelineId, pipeline_version_id: versionId }, recurring: true,
            defaults: { display_name: `${pipeline.display_name} schedule` } });
          if (created) location.hash = `#/recurringruns/${created.recurring_run_id}`;
        } }, "Create recurring run")),
      version.description ? h("p", {}, version.description) : null,
      graphBox);
    const graph = new GraphView(graphBox, version.pipeline_spec, { live: false, onSelect: () => {} });
    graph.update([], null);
  }

  const table = pagedTable(versions, {
    className: "versions",
    fetchPage: async (token) => {
      const data = await api(`${API}/pipelines/${enc(pipelineId)}/versions`, { params: { page_size: 10, page_token: token, sort_by: "created_at desc" } });
      const items = data.pipeline_versions || [];
      if (!shown && items.length) showVersion(items[0].pipeline_version_id);
      return { items, total_size: data.total_size, next_page_token: data.next_page_token, page_size: 10 };
    },
    columns: [
      { title: "Version", cell: (v) => h("a", { href: "#", onclick: (e) => { e.preventDefault(); showVersion(v.pipeline_version_id); } }, v.display_name || v.name) },
      { title: "Created", cell: (v) => fmtTime(v.created_at) },
      { title: "Description", cell: (v) => v.description || "" },
    ],
  });
  if (shown) showVersion(shown);
  return () => table.stop();
}
