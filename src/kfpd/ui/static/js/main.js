// The router: #/runs, #/runs/<id>, #/experiments, #/pipelines, #/recurringruns, #/artifacts,
// #/compare.
import { chooseNamespace, currentRole, errorBox, loadSession, pickableNamespaces, session, toast } from "./api.js";
import { h, mount } from "./dom.js";
import { parseHash } from "./nav.js";
import * as artifacts from "./views/artifacts.js";
import * as compare from "./views/compare.js";
import * as experiments from "./views/experiments.js";
import * as pipelines from "./views/pipelines.js";
import * as recurring from "./views/recurring.js";
import * as run from "./views/run.js";
import * as runs from "./views/runs.js";

const ROUTES = [
  [/^runs$/, runs.renderList, "runs"],
  [/^runs\/([^/]+)$/, run.render, "runs"],
  [/^experiments$/, experiments.renderList, "experiments"],
  [/^experiments\/([^/]+)$/, experiments.renderOne, "experiments"],
  [/^pipelines$/, pipelines.renderList, "pipelines"],
  [/^pipelines\/([^/]+)$/, pipelines.renderOne, "pipelines"],
  [/^recurringruns$/, recurring.renderList, "recurringruns"],
  [/^recurringruns\/([^/]+)$/, recurring.renderOne, "recurringruns"],
  [/^artifacts$/, artifacts.renderList, "artifacts"],
  [/^artifacts\/([^/]+)$/, artifacts.renderOne, "artifacts"],
  [/^compare$/, compare.render, "runs"],
];

// Links in upstream KFP's URL form (the kfp SDK prints /#/runs/details/<id>) open the same page.
const UPSTREAM_ALIASES = [
  [/^runs\/details\/([^/]+)$/, "runs/$1"],
  [/^experiments\/details\/([^/]+)$/, "experiments/$1"],
  [/^pipelines\/details\/([^/]+)(?:\/version\/[^/]+)?$/, "pipelines/$1"],
  [/^recurringrun\/details\/([^/]+)$/, "recurringruns/$1"],
  [/^recurringruns?\/details\/([^/]+)$/, "recurringruns/$1"],
  [/^artifacts\/details\/([^/]+)$/, "artifacts/$1"],
  [/^archive\/runs$/, "runs"],
  [/^archive\/experiments$/, "experiments"],
  [/^executions$/, "runs"],
];

function upstreamAlias(path) {
  for (const [pattern, target] of UPSTREAM_ALIASES) {
    if (pattern.test(path)) return path.replace(pattern, target);
  }
  return null;
}

let cleanup = null;

async function route() {
  if (typeof cleanup === "function") {
    try {
      cleanup();
    } catch {
      /* a view's cleanup must never block navigation */
    }
  }
  cleanup = null;
  // A dialog belongs to the page that opened it: leaving the page closes it.
  document.querySelectorAll("dialog[open]").forEach((dialog) => dialog.close());
  const root = document.getElementById("app");
  const { path, query } = parseHash();
  const alias = upstreamAlias(path);
  if (alias !== null) {
    const search = window.location.hash.includes("?") ? "?" + window.location.hash.split("?")[1] : "";
    window.location.replace(`#/${alias}${search}`);
    return;
  }
  for (const [pattern, view, nav] of ROUTES) {
    const match = pattern.exec(path);
    if (!match) continue;
    document.querySelectorAll("[data-nav]").forEach((a) => {
      a.classList.toggle("active", a.dataset.nav === nav);
    });
    const params = match.slice(1).map(decodeURIComponent);
    try {
      cleanup = await view(root, params, query);
    } catch (err) {
      mount(root, errorBox(err));
    }
    return;
  }
  mount(root, h("div", { class: "error-box", role: "alert" }, `There is no page at #/${path}.`),
    h("p", {}, h("a", { href: "#/runs" }, "Go to the runs list")));
}

/** Multi-user mode: the namespace picker in the top bar, and the role it gives (CSS hides
 * the actions a viewer may not take; the server refuses them anyway). */
function renderSession() {
  document.body.dataset.role = currentRole();
  if (!session.multiUser) return;
  const names = pickableNamespaces();
  const picker = h("select", { id: "namespace-picker", "aria-label": "namespace", onchange: (event) => {
    chooseNamespace(event.target.value);
    document.body.dataset.role = currentRole();
    route();
  } }, ...names.map((ns) => h("option", { value: ns, selected: ns === session.current }, ns)));
  const who = h("span", { class: "muted", id: "signed-in-as" }, session.user);
  document.querySelector("header.topbar").append(h("div", { class: "session" }, picker, who));
}

window.addEventListener("hashchange", route);
window.addEventListener("unhandledrejection", (event) => {
  const reason = event.reason;
  if (reason && reason.name === "AbortError") return;
  toast(`Something went wrong: ${reason && reason.message ? reason.message : reason}`, "error");
  event.preventDefault();
});
window.addEventListener("error", (event) => {
  toast(`Something went wrong: ${event.message}`, "error");
});
loadSession().then(renderSession, () => {}).finally(route);
