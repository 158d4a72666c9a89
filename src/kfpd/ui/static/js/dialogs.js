// Small forms in a <dialog>: upload a pipeline, create an experiment, pick a pipeline to run.
import { API, api, errorBox, pipelineTargets, session } from "./api.js";
import { h } from "./dom.js";
import { openRunDialog } from "./runform.js";

/**
 * A modal form. `fields` are {name, label, input}; `submit(values)` does the work and resolves
 * to the result (the dialog closes) or throws (the error is shown, the dialog stays).
 */
function formDialog({ title, fields, action, className, submit }) {
  return new Promise((resolve) => {
    const problems = h("div", {});
    const button = h("button", { class: "primary", type: "submit" }, action);
    const form = h("form", { method: "dialog" },
      h("h2", {}, title),
      fields.map((f) => h("div", {}, h("label", { for: `dlg-${f.name}` }, f.label), f.input)),
      problems,
      h("div", { class: "actions" }, button,
        h("button", { type: "button", onclick: () => dialog.close() }, "Cancel")));
    const dialog = h("dialog", { class: `run-dialog ${className}` }, form);
    let result = null;
    dialog.addEventListener("close", () => { resolve(result); dialog.remove(); });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      problems.textContent = "";
      button.disabled = true;
      try {
        result = await submit();
        dialog.close();
      } catch (err) {
        problems.append(errorBox(err, `${action} did not work`));
        button.disabled = false;
      }
    });
    fields.forEach((f) => { f.input.id = `dlg-${f.name}`; });
    document.body.append(dialog);
    dialog.showModal();
  });
}

export function uploadPipelineDialog() {
  const file = h("input", { type: "file", name: "uploadfile", accept: ".yaml,.yml,.json,.zip,.gz,.tgz", required: true });
  const name = h("input", { name: "name", placeholder: "default: the file's pipeline name" });
  const description = h("input", { name: "description" });
  // Multi-user: the picked namespace (its editors) or shared (admins); the first is the default.
  const targets = pipelineTargets();
  const where = h("select", { name: "namespace" }, targets.map((ns) => h("option", { value: ns }, ns || "shared (every namespace)")));
  return formDialog({
    title: "Upload pipeline", action: "Upload", className: "upload-dialog",
    fields: [
      { name: "file", label: "Compiled pipeline (YAML, JSON, .zip, .tar.gz)", input: file },
      { name: "name", label: "Name", input: name },
      { name: "description", label: "Description", input: description },
      ...(session.multiUser ? [{ name: "namespace", label: "Namespace", input: where }] : []),
    ],
    submit: () => {
      if (!file.files.length) throw new Error("Choose a file to upload.");
      const form = new FormData();
      form.append("uploadfile", file.files[0]);
      return api(`${API}/pipelines/upload`, {
        method: "POST", form,
        params: { name: name.value.trim(), description: description.value.trim(), namespace: session.multiUser ? where.value : undefined },
      });
    },
  });
}

export function newExperimentDialog() {
  const name = h("input", { name: "display_name", required: true });
  const description = h("input", { name: "description" });
  return formDialog({
    title: "New experiment", action: "Create", className: "experiment-dialog",
    fields: [
      { name: "name", label: "Name", input: name },
      { name: "description", label: "Description", input: description },
    ],
    submit: () => api(`${API}/experiments`, {
      method: "POST", body: { display_name: name.value.trim(), description: description.value.trim() },
    }),
  });
}

/** The pipelines a run may start from: all (single-user), or the picked namespace's own and
 * the shared ones (multi-user: the server lists one namespace per call). */
async function listRunnablePipelines() {
  const params = { page_size: 200, sort_by: "display_name" };
  if (!session.multiUser) return (await api(`${API}/pipelines`, { params })).pipelines || [];
  const namespaces = session.current ? [session.current, ""] : [""];
  const pages = await Promise.all(namespaces.map((namespace) => api(`${API}/pipelines`, { params: { ...params, namespace } })));
  return pages.flatMap((page) => page.pipelines || []);
}

/** Pick a pipeline (its latest version), then the usual run form. Resolves to the new run. */
export async function createRunDialog() {
  const select = h("select", { name: "pipeline", required: true }, h("option", { value: "" }, "Loading…"));
  listRunnablePipelines().then((pipelines) => {
    select.textContent = "";
    select.append(h("option", { value: "" }, pipelines.length ? "Choose a pipeline" : "No pipelines yet: upload one first"));
    for (const p of pipelines) {
      const label = p.display_name || p.name;
      select.append(h("option", { value: p.pipeline_id, dataset: { name: label } }, session.multiUser && !p.namespace ? `${label} (shared)` : label));
    }
  }).catch(() => { select.textContent = ""; select.append(h("option", { value: "" }, "Cannot list pipelines")); });
  const chosen = await formDialog({
    title: "Create run", action: "Next", className: "choose-pipeline-dialog",
    fields: [{ name: "pipeline", label: "Pipeline (its latest version)", input: select }],
    submit: async () => {
      if (!select.value) throw new Error("Choose a pipeline.");
      const versions = await api(`${API}/pipelines/${encodeURIComponent(select.value)}/versions`, {
        params: { page_size: 1, sort_by: "created_at desc" },
      });
      const [latest] = versions.pipeline_versions || [];
      if (!latest) throw new Error("This pipeline has no version.");
      return { pipelineId: select.value, name: select.selectedOptions[0].dataset.name, version: latest };
    },
  });
  if (!chosen) return null;
  const version = await api(`${API}/pipelines/${encodeURIComponent(chosen.pipelineId)}/versions/${encodeURIComponent(chosen.version.pipeline_version_id)}`);
  return openRunDialog({
    title: `New run of ${chosen.name}`, spec: version.pipeline_spec,
    versionRef: { pipeline_id: chosen.pipelineId, pipeline_version_id: version.pipeline_version_id },
    defaults: { display_name: `${chosen.name} ${new Date().toISOString().slice(0, 16).replace("T", " ")}` },
  });
}
