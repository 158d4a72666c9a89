// Runs list: server-side paging, sorting and filtering (state, name, experiment, dates).
// One ListRuns call per page plus one ListExperiments call for the page's experiment names.
import { API, api, duration, errorBox, fmtDuration, fmtTime, kfpFilter, stateBadge } from "../api.js";
import { createRunDialog } from "../dialogs.js";
import { h, mount } from "../dom.js";
import { setQuery } from "../nav.js";

const PAGE_SIZE = 20;
const STATES = ["", "PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"];
const SORTABLE = { display_name: "Name", state: "State", created_at: "Created", finished_at: "Finished" };

function dayStart(text, plusDays = 0) {
  const [y, m, d] = text.split("-").map(Number);
  if (!y || !m || !d) return null;
  return new Date(y, m - 1, d + plusDays).toISOString();
}

export async function renderList(root, _params, query) {
  const table = h("div", {});
  const create = h("button", { class: "primary", dataset: { action: "create-run" }, onclick: async () => {
    const created = await createRunDialog();
    if (created) location.hash = `#/runs/${created.run_id}`;
  } }, "Create run");
  mount(root, h("div", { class: "page-head" }, h("h1", {}, "Runs"), create), table);
  return runsTable(table, { query });
}

/** A runs table; `experimentId` fixes the experiment (experiment page). Returns a cleanup. */
export function runsTable(container, { query, experimentId = "" }) {
  const state = {
    state: query.get("state") || "",
    name: query.get("q") || "",
    experiment: experimentId || query.get("exp") || "",
    from: query.get("from") || "",
    to: query.get("to") || "",
    sort: SORTABLE[query.get("sort")] ? query.get("sort") : "created_at",
    desc: query.get("asc") !== "1",
    archived: query.get("archived") === "1",
    tokens: [""],
    page: 0,
    selected: new Set(),
  };
  let generation = 0;

  const nameInput = h("input", { type: "search", placeholder: "name contains…", value: state.name, "aria-label": "filter by name" });
  const stateSelect = h("select", { "aria-label": "filter by state" }, STATES.map((s) => h("option", { value: s, selected: s === state.state }, s || "any state")));
  const expSelect = h("select", { "aria-label": "filter by experiment", disabled: Boolean(experimentId) }, h("option", { value: "" }, "any experiment"));
  const fromInput = h("input", { type: "date", value: state.from, "aria-label": "created from" });
  const toInput = h("input", { type: "date", value: state.to, "aria-label": "created until" });
  const archivedBox = h("input", { type: "checkbox", checked: state.archived });
  const compareBtn = h("button", { disabled: true, onclick: () => {
    location.hash = `#/compare?runs=${[...state.selected].join(",")}`;
  } }, "Compare selected");
  const summary = h("span", { class: "muted" });
  const body = h("div", {});
  const pager = h("div", { class: "pager" });

  const apply = () => {
    state.name = nameInput.value.trim();
    state.state = stateSelect.value;
    if (!experimentId) state.experiment = expSelect.value;
    state.from = fromInput.value;
    state.to = toInput.value;
    state.archived = archivedBox.checked;
    state.tokens = [""];
    state.page = 0;
    if (!experimentId) {
      setQuery({ q: state.name, state: state.state, exp: state.experiment, from: state.from, to: state.to,
        archived: state.archived ? "1" : "", sort: state.sort === "created_at" ? "" : state.sort, asc: state.desc ? "" : "1" });
    }
    load();
  };
  let typing;
  nameInput.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(apply, 300); });
  [stateSelect, expSelect, fromInput, toInput, archivedBox].forEach((el) => el.addEventListener("change", apply));

  mount(container,
    h("div", { class: "toolbar" }, nameInput, h("label", {}, "State", stateSelect), h("label", {}, "Experiment", expSelect),
      h("label", {}, "Created from", fromInput), h("label", {}, "until", toInput),
      h("label", {}, archivedBox, "archived"), compareBtn, summary),
    body, pager);

  const experimentNames = new Map();
  api(`${API}/experiments`, { params: { page_size: 200, sort_by: "display_name" } }).then((data) => {
    for (const e of data.experiments || []) {
      experimentNames.set(e.experiment_id, e.display_name);
      expSelect.append(h("option", { value: e.experiment_id, selected: e.experiment_id === state.experiment }, e.display_name));
    }
  }).catch(() => {});

  function filterText() {
    return kfpFilter([
      state.state && { key: "state", operation: "EQUALS", string_value: state.state },
      state.name && { key: "display_name", operation: "IS_SUBSTRING", string_value: state.name },
      state.from && dayStart(state.from) && { key: "created_at", operation: "GREATER_THAN_EQUALS", timestamp_value: dayStart(state.from) },
      state.to && dayStart(state.to, 1) && { key: "created_at", operation: "LESS_THAN", timestamp_value: dayStart(state.to, 1) },
      { key: "storage_state", operation: "EQUALS", string_value: state.archived ? "ARCHIVED" : "AVAILABLE" },
    ]);
  }

  function header(field, label) {
    if (!field) return h("th", {}, label);
    const sorted = state.sort === field;
    return h("th", {
      class: `sortable${sorted ? " sorted" : ""}${sorted && !state.desc ? " asc" : ""}`,
      dataset: { sort: field },
      onclick: () => {
        state.desc = state.sort === field ? !state.desc : field !== "display_name";
        state.sort = field;
        apply();
      },
    }, label);
  }

  async function load() {
    const mine = ++generation;
    body.classList.add("muted");
    let data;
    try {
      data = await api(`${API}/runs`, {
        params: {
          page_size: PAGE_SIZE, page_token: state.tokens[state.page], sort_by: `${state.sort}${state.desc ? " desc" : ""}`,
          filter: filterText(), experiment_id: state.experiment,
        },
      });
    } catch (err) {
      if (mine === generation) mount(body, errorBox(err, "Could not list runs"));
      return;
    }
    if (mine !== generation) return;
    body.classList.remove("muted");
    const runs = data.runs || [];
    const missing = [...new Set(runs.map((r) => r.experiment_id).filter((id) => id && !experimentNames.has(id)))];
    if (missing.length) {
      try {
        const found = await api(`${API}/experiments`, { params: { page_size: missing.length,
          filter: kfpFilter([{ key: "experiment_id", operation: "IN", string_values: { values: missing } }]) } });
        for (const e of found.experiments || []) experimentNames.set(e.experiment_id, e.display_name);
      } catch { /* names are a nicety; ids still link */ }
    }
    if (mine !== generation) return;
    summary.textContent = `${data.total_size || 0} runs`;
    const rows = runs.map((r) => {
      const box = h("input", { type: "checkbox", checked: state.selected.has(r.run_id), "aria-label": `select ${r.display_name}`,
        onchange: (e) => {
          if (e.target.checked) state.selected.add(r.run_id); else state.selected.delete(r.run_id);
          compareBtn.disabled = state.selected.size < 2 || state.selected.size > 10;
          compareBtn.textContent = `Compare selected (${state.selected.size})`;
        } });
      const running = !["SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"].includes(r.state);
      return h("tr", { dataset: { runId: r.run_id } },
        h("td", {}, box),
        h("td", {}, h("a", { href: `#/runs/${r.run_id}` }, r.display_name || r.run_id)),
        h("td", {}, stateBadge(r.state)),
        h("td", {}, r.experiment_id ? h("a", { href: `#/experiments/${r.experiment_id}` }, experimentNames.get(r.experiment_id) || r.experiment_id.slice(0, 8)) : "–"),
        h("td", {}, fmtTime(r.created_at)),
        h("td", { class: "duration" }, fmtDuration(duration(r.created_at, r.finished_at, running))));
    });
    mount(body, runs.length
      ? h("table", { class: "list runs" },
        h("thead", {}, h("tr", {}, h("th", {}, ""), header("display_name", "Name"), header("state", "State"), h("th", {}, "Experiment"), header("created_at", "Created"), h("th", {}, "Duration"))),
        h("tbody", {}, rows))
      : h("p", { class: "muted" }, "No runs match these filters."));
    const pages = Math.max(1, Math.ceil((data.total_size || 0) / PAGE_SIZE));
    mount(pager,
      h("button", { disabled: state.page === 0, onclick: () => { state.page -= 1; load(); } }, "‹ Previous"),
      h("span", { class: "muted" }, `page ${state.page + 1} of ${pages}`),
      h("button", { disabled: !data.next_page_token, onclick: () => {
        state.tokens[state.page + 1] = data.next_page_token;
        state.page += 1;
        load();
      } }, "Next ›"));
  }

  load();
  return () => { generation += 1; clearTimeout(typing); };
}

