// The "new run" dialog: clone a run with new parameters, or start a run of a pipeline version;
// with `recurring`, the same dialog plus a schedule creates a recurring run.
import { API, api, errorBox, fmtValue, session, UI_API } from "./api.js";
import { unwrapSpec } from "./graph.js";
import { h } from "./dom.js";
import { triggerFields } from "./views/recurring.js";

function parseParam(raw, type, name) {
  const text = raw.trim();
  switch (type) {
    case "NUMBER_INTEGER": {
      if (!/^-?\d+$/.test(text)) throw new Error(`${name} must be an integer`);
      return Number(text);
    }
    case "NUMBER_DOUBLE": {
      const n = Number(text);
      if (text === "" || !Number.isFinite(n)) throw new Error(`${name} must be a number`);
      return n;
    }
    case "BOOLEAN":
      if (!["true", "false"].includes(text.toLowerCase())) throw new Error(`${name} must be true or false`);
      return text.toLowerCase() === "true";
    case "LIST":
    case "STRUCT": {
      let value;
      try {
        value = JSON.parse(text);
      } catch {
        throw new Error(`${name} must be JSON (${type === "LIST" ? "a list" : "an object"})`);
      }
      if (type === "LIST" ? !Array.isArray(value) : (typeof value !== "object" || Array.isArray(value) || value === null)) {
        throw new Error(`${name} must be ${type === "LIST" ? "a JSON list" : "a JSON object"}`);
      }
      return value;
    }
    default:
      return raw;
  }
}

/**
 * Open the dialog. `source` is {spec, pipelineVersionRef?} ; `defaults` holds display_name,
 * experiment_id, parameters. Resolves to the created run, or null when cancelled.
 */
export function openRunDialog({ title, spec, versionRef, defaults = {}, recurring = false }) {
  return new Promise((resolve) => {
    const ir = unwrapSpec(spec);
    const declared = (ir.root && ir.root.inputDefinitions && ir.root.inputDefinitions.parameters) || {};
    const values = defaults.parameters || {};
    const nameInput = h("input", { name: "display_name", value: defaults.display_name || "", required: true });
    // "Default": the Default experiment of the picked namespace (multi-user; made on first
    // use when the run is submitted), else the server's own default. The list is the picked
    // namespace's experiments only (api.js scopes it).
    const defaultOption = h("option", { value: "" }, "Default");
    const expSelect = h("select", { name: "experiment_id" }, defaultOption);
    api(`${API}/experiments`, { params: { page_size: 200, sort_by: "display_name" } }).then((data) => {
      for (const e of data.experiments || []) {
        if (e.display_name === "Default" && (e.namespace || "") === session.current && !defaultOption.value) {
          defaultOption.value = e.experiment_id;  // it exists already: one "Default" entry
          defaultOption.selected = !defaults.experiment_id || e.experiment_id === defaults.experiment_id;
          continue;
        }
        expSelect.append(h("option", { value: e.experiment_id, selected: e.experiment_id === defaults.experiment_id }, e.display_name));
      }
    }).catch(() => {});
    const inputs = Object.entries(declared).map(([name, def]) => {
      const type = def.parameterType || "STRING";
      const current = name in values ? values[name] : def.defaultValue;
      const input = h("input", {
        name: `param:${name}`, value: current === undefined ? "" : (typeof current === "string" ? current : fmtValue(current)),
        dataset: { param: name, type },
      });
      return { name, type, optional: Boolean(def.isOptional) || def.defaultValue !== undefined, input, label: h("label", {}, `${name} `, h("span", { class: "muted" }, type.toLowerCase())) };
    });
    const problems = h("div", {});
    const schedule = recurring ? triggerFields() : null;
    const submit = h("button", { class: "primary", type: "submit" }, recurring ? "Create recurring run" : "Start run");
    const form = h("form", { method: "dialog" },
      h("h2", {}, title),
      h("div", {}, h("label", {}, recurring ? "Name" : "Run name"), nameInput),
      h("div", {}, h("label", {}, "Experiment"), expSelect),
      schedule ? schedule.node : null,
      inputs.length ? h("h3", {}, "Parameters") : h("p", { class: "muted" }, "This pipeline takes no parameters."),
      inputs.map((i) => h("div", {}, i.label, i.input)),
      problems,
      h("div", { class: "actions" }, submit, h("button", { type: "button", onclick: () => { dialog.close(); } }, "Cancel")));
    const dialog = h("dialog", { class: "run-dialog" }, form);
    dialog.addEventListener("close", () => { resolve(null); dialog.remove(); });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      problems.textContent = "";
      const parameters = {};
      try {
        for (const i of inputs) {
          if (i.input.value === "" && i.optional && i.type !== "STRING") continue;
          parameters[i.name] = parseParam(i.input.value, i.type, i.name);
        }
      } catch (err) {
        problems.append(errorBox(err));
        return;
      }
      const body = {
        display_name: nameInput.value.trim(),
        experiment_id: expSelect.value || undefined,
        runtime_config: { parameters, pipeline_root: defaults.pipeline_root || undefined },
        ...(schedule ? schedule.read() : {}),
      };
      if (versionRef && versionRef.pipeline_version_id) body.pipeline_version_reference = versionRef;
      else body.pipeline_spec = spec;
      submit.disabled = true;
      try {
        if (!body.experiment_id && session.multiUser) {
          // Get-or-create (race-free on the server): never the shared namespace's Default,
          // where only admins may run.
          const made = await api(`${UI_API}/experiments:default`, { method: "POST", params: { namespace: session.current }, body: {} });
          body.experiment_id = made.experiment_id;
        }
        const created = await api(`${API}/${recurring ? "recurringruns" : "runs"}`, { method: "POST", body });
        resolve(created);
        dialog.close();
      } catch (err) {
        problems.append(errorBox(err, recurring ? "The recurring run was not created" : "The run was not created"));
        submit.disabled = false;
      }
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}
