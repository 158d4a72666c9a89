// HTTP access to the kfpd API, error messages a person can read, and formatting helpers.
import { h } from "./dom.js";

export const API = "/apis/v2beta1";
export const UI_API = "/ui/api";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Query string from an object; empty values are left out, arrays repeat the key. */
export function qs(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value === undefined || value === null || value === "") continue;
    if (Array.isArray(value)) value.forEach((v) => search.append(key, v));
    else search.append(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

function describe(status, body, path) {
  const message = body && (body.message || body.error);
  if (message) return message;
  if (status === 404) return `not found: ${path}`;
  return `the server answered ${status}`;
}

/**
 * Who is signed in (multi-user mode): the user, their namespaces with a role each, and the
 * namespace the picker shows. Single-user: multiUser false, every call unchanged.
 */
export const session = { multiUser: false, user: "", namespaces: {}, current: "" };
const NAMESPACE_KEY = "kfpd.namespace";

export async function loadSession() {
  let me;
  try {
    me = await api(`${API}/auth/whoami`);
  } catch {
    return session;  // an older server, or not signed in: the API calls will say why
  }
  session.multiUser = Boolean(me.multi_user);
  session.user = me.user || "";
  session.namespaces = me.namespaces || {};
  const names = pickableNamespaces();
  const saved = window.localStorage.getItem(NAMESPACE_KEY);
  session.current = names.includes(saved) ? saved : names[0] || "";
  return session;
}

/** The namespaces the picker offers ("*" is a binding on every namespace, not one to pick). */
export function pickableNamespaces() {
  return Object.keys(session.namespaces).filter((ns) => ns !== "*" && ns !== "").sort();
}

export function chooseNamespace(namespace) {
  session.current = namespace;
  window.localStorage.setItem(NAMESPACE_KEY, namespace);
}

/** The caller's role in the current namespace ("" single-user: everything allowed). */
export function currentRole() {
  return roleIn(session.current);
}

const ROLE_ORDER = ["", "viewer", "editor", "admin"];

/** The caller's strongest role in a namespace, a "*" binding included ("" single-user). */
export function roleIn(namespace) {
  if (!session.multiUser) return "";
  const here = session.namespaces[namespace] || "";
  const everywhere = session.namespaces["*"] || "";
  return ROLE_ORDER.indexOf(here) >= ROLE_ORDER.indexOf(everywhere) ? here : everywhere;
}

/** Where a new pipeline may go, best first: the picked namespace for its editors and admins,
 * the shared namespace ("") for admins only, as the server decides (single-user: [""]). */
export function pipelineTargets() {
  if (!session.multiUser) return [""];
  const targets = [];
  if (session.current && ["editor", "admin"].includes(roleIn(session.current))) targets.push(session.current);
  if (roleIn("") === "admin") targets.push("");
  return targets;
}

// Calls that are scoped by a namespace: in multi-user mode the picker's namespace goes along.
const NAMESPACED_LISTS = new Set([`${API}/runs`, `${API}/experiments`, `${API}/recurringruns`,
  `${API}/artifacts`, `${UI_API}/artifacts`]);

function scoped(path, method, params, body) {
  if (!session.multiUser || !session.current) return { params, body };
  if (method === "GET" && NAMESPACED_LISTS.has(path) && !(params && params.namespace)) {
    return { params: { ...(params || {}), namespace: session.current }, body };
  }
  if (method === "POST" && path === `${API}/experiments` && body && !body.namespace) {
    return { params, body: { ...body, namespace: session.current } };
  }
  return { params, body };
}

/**
 * Call the API; resolves to the JSON body, or rejects with an ApiError whose message is the
 * server's own (never a stack trace). `etag` makes a conditional GET: a 304 resolves to null.
 */
export async function api(path, { method = "GET", body, form, params, etag, signal } = {}) {
  ({ params, body } = scoped(path, method, params, body));
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (etag) headers["If-None-Match"] = etag;
  let response;
  try {
    response = await fetch(path + qs(params), {
      method,
      headers,
      // `form` (FormData) goes as multipart: the browser sets its Content-Type and boundary.
      body: form !== undefined ? form : body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
  } catch (err) {
    if (err && err.name === "AbortError") throw err;
    throw new ApiError(0, "Cannot reach the kfpd server. Is it running?");
  }
  if (response.status === 304) return null;
  let data = null;
  const text = await response.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) throw new ApiError(response.status, describe(response.status, data, path));
  if (data && typeof data === "object" && etag !== undefined) {
    Object.defineProperty(data, "_etag", { value: response.headers.get("ETag"), enumerable: false });
  }
  return data ?? {};
}

/** A KFP list filter (the JSON the `filter` query parameter carries). */
export function kfpFilter(predicates) {
  const kept = predicates.filter(Boolean);
  return kept.length ? JSON.stringify({ predicates: kept }) : "";
}

export function errorBox(err, what) {
  const message = err instanceof Error ? err.message : String(err);
  let hint = "";
  if (err instanceof ApiError && err.status === 404) hint = " It may have been deleted, or the link is wrong.";
  return h("div", { class: "error-box", role: "alert" }, what ? `${what}: ` : "", message, hint);
}

export function toast(message, kind = "info") {
  const el = document.getElementById("toast");
  if (!el) return;
  el.textContent = message;
  el.className = `toast-${kind}`;
  el.hidden = false;
  clearTimeout(toast._timer);
  toast._timer = setTimeout(() => (el.hidden = true), 5000);
}

// ---------------------------------------------------------------- formatting

export function parseTime(text) {
  if (!text) return null;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? null : ms;
}

export function fmtTime(text) {
  const ms = parseTime(text);
  if (ms === null) return "–";
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtDuration(ms) {
  if (ms === null || ms === undefined || ms < 0) return "–";
  const total = Math.round(ms / 1000);
  if (total < 60) return `${total}s`;
  const m = Math.floor(total / 60);
  const sec = total % 60;
  if (m < 60) return `${m}m ${sec}s`;
  const hr = Math.floor(m / 60);
  return `${hr}h ${m % 60}m`;
}

export function duration(start, end, running) {
  const a = parseTime(start);
  if (a === null) return null;
  const b = parseTime(end) ?? (running ? Date.now() : null);
  return b === null ? null : b - a;
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let i = 0;
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024;
    i += 1;
  }
  return `${i ? value.toFixed(1) : value} ${units[i]}`;
}

/** Numbers with a fraction show at most 4 significant decimals (0.8333333 -> 0.8333). */
export function fmtNumber(value) {
  if (Number.isInteger(value)) return String(value);
  if (Math.abs(value) >= 1e-4 && Math.abs(value) < 1e15) return String(Number(value.toFixed(4)));
  return value.toPrecision(4);
}

export function fmtValue(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") return fmtNumber(value);
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

const RUN_STATE_CLASS = {
  PENDING: "pending", RUNNING: "running", SUCCEEDED: "succeeded", SKIPPED: "skipped",
  FAILED: "failed", CANCELING: "canceled", CANCELED: "canceled", PAUSED: "pending",
  CACHED: "cached", RUNTIME_STATE_UNSPECIFIED: "pending",
};

export function stateClass(state) {
  return RUN_STATE_CLASS[state] || "pending";
}

export function stateBadge(state) {
  const label = state && state !== "RUNTIME_STATE_UNSPECIFIED" ? state : "PENDING";
  return h("span", { class: `badge st-${stateClass(label)}`, dataset: { state: label } }, label);
}

export const TERMINAL_RUN_STATES = new Set(["SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"]);
