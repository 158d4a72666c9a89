// Experiments: list, and one experiment's runs (the runs table, fixed to it).
import { API, api, errorBox, fmtTime, kfpFilter } from "../api.js";
import { newExperimentDialog } from "../dialogs.js";
import { h, mount } from "../dom.js";
import { pagedTable } from "../list.js";
import { runsTable } from "./runs.js";

export async function renderList(root) {
  const search = h("input", { type: "search", placeholder: "name contains…", "aria-label": "filter by name" });
  const holder = h("div", {});
  const create = h("button", { class: "primary", dataset: { action: "new-experiment" }, onclick: async () => {
    const created = await newExperimentDialog();
    if (created) location.hash = `#/experiments/${created.experiment_id}`;
  } }, "New experiment");
  mount(root, h("h1", {}, "Experiments"), h("div", { class: "toolbar" }, search, create), holder);
  const table = pagedTable(holder, {
    className: "experiments",
    fetchPage: async (token) => {
      const data = await api(`${API}/experiments`, { params: {
        page_size: 20, page_token: token, sort_by: "created_at desc",
        filter: kfpFilter([search.value.trim() && { key: "display_name", operation: "IS_SUBSTRING", string_value: search.value.trim() }]),
      } });
      return { items: data.experiments, total_size: data.total_size, next_page_token: data.next_page_token };
    },
    columns: [
      { title: "Name", cell: (e) => h("a", { href: `#/experiments/${e.experiment_id}` }, e.display_name) },
      { title: "Description", cell: (e) => e.description || "" },
      { title: "State", cell: (e) => e.storage_state || "" },
      { title: "Last run", cell: (e) => fmtTime(e.last_run_created_at) },
      { title: "Created", cell: (e) => fmtTime(e.created_at) },
    ],
  });
  let typing;
  search.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(() => table.reload(), 300); });
  return () => table.stop();
}

export async function renderOne(root, [experimentId], query) {
  let experiment;
  try {
    experiment = await api(`${API}/experiments/${encodeURIComponent(experimentId)}`);
  } catch (err) {
    mount(root, h("h1", {}, "Experiment"), errorBox(err, `Experiment ${experimentId} cannot be shown`));
    return undefined;
  }
  const runs = h("div", {});
  mount(root, h("h1", {}, experiment.display_name, experiment.storage_state === "ARCHIVED" ? h("span", { class: "badge" }, "ARCHIVED") : null),
    experiment.description ? h("p", {}, experiment.description) : null,
    h("h2", {}, "Runs"), runs);
  return runsTable(runs, { query, experimentId });
}

