// Recurring runs: the list, one schedule's page (trigger in words, next fire times,
// enable/disable/delete, its runs), and the "create recurring run" dialog's trigger part.
import { API, api, errorBox, fmtTime, kfpFilter, stateBadge, toast } from "../api.js";
import { h, mount } from "../dom.js";
import { pagedTable } from "../list.js";

const enc = encodeURIComponent;
const POLL_MS = 2000;

function plural(n, unit) {
  return `${n} ${unit}${n === 1 ? "" : "s"}`;
}

/** "every 90 seconds" -> "every 1 minute 30 seconds" style wording of a number of seconds. */
export function everyWords(seconds) {
  const n = Number(seconds);
  if (!Number.isFinite(n) || n <= 0) return "never";
  const parts = [];
  let rest = n;
  for (const [size, unit] of [[86400, "day"], [3600, "hour"], [60, "minute"], [1, "second"]]) {
    if (rest >= size) {
      parts.push(plural(Math.floor(rest / size), unit));
      rest %= size;
    }
  }
  return `every ${parts.join(" ")}`;
}

const DESCRIPTORS = {
  "@yearly": "every year (Jan 1, 00:00:00)", "@annually": "every year (Jan 1, 00:00:00)",
  "@monthly": "every month (day 1, 00:00:00)", "@weekly": "every week (Sunday 00:00:00)",
  "@daily": "every day at 00:00:00", "@midnight": "every day at 00:00:00",
  "@hourly": "every hour at minute 0",
};

function goDurationSeconds(text) {
  const units = { h: 3600, m: 60, s: 1, ms: 0.001, us: 1e-6, "µs": 1e-6, ns: 1e-9 };
  let total = 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/g;
  let match;
  while ((match = re.exec(text)) !== null) total += Number(match[1]) * units[match[2]];
  return Math.max(1, Math.floor(total));
}

const two = (v) => String(v).padStart(2, "0");

/** A cron string in words, read as kfpd (and upstream) read it: seconds first. */
export function cronWords(expression) {
  const text = (expression || "").trim().split(/\s+/).join(" ");
  const lower = text.toLowerCase();
  if (lower.startsWith("@every")) return everyWords(goDurationSeconds(text.slice(6)));
  if (DESCRIPTORS[lower]) return DESCRIPTORS[lower];
  const f = text.split(" ");
  if (f.length === 5) f.push("*");
  if (f.length !== 6) return `cron "${text}"`;
  const [sec, min, hour, dom, month, dow] = f;
  const anyDay = dom === "*" || dom === "?";
  const daily = anyDay && month === "*" && (dow === "*" || dow === "?");
  const step = (field) => (/^\*\/(\d+)$/.exec(field) || [])[1];
  const num = (field) => /^\d+$/.test(field);
  if (daily && step(sec) && min === "*" && hour === "*") return everyWords(step(sec));
  if (daily && num(sec) && step(min) && hour === "*") return `${everyWords(step(min) * 60)} at second ${sec}`;
  if (daily && num(sec) && min === "*" && hour === "*") return `every minute at second ${sec}`;
  if (daily && num(sec) && num(min) && step(hour)) return `${everyWords(step(hour) * 3600)} at minute ${min}`;
  if (daily && num(sec) && num(min) && hour === "*") return `every hour at ${two(min)}:${two(sec)}`;
  if (daily && num(sec) && num(min) && num(hour)) return `every day at ${two(hour)}:${two(min)}:${two(sec)}`;
  return `second ${sec}, minute ${min}, hour ${hour}, day ${dom}, month ${month}, weekday ${dow}`;
}

/** The trigger of a recurring run in words, with its time window and timezone. */
export function triggerWords(trigger) {
  if (!trigger) return "no trigger";
  const cron = trigger.cron_schedule;
  const periodic = trigger.periodic_schedule;
  const schedule = cron || periodic || {};
  let words = cron ? cronWords(cron.cron) : everyWords(periodic ? periodic.interval_second : 0);
  if (cron) words += ` (${cron.timezone || "UTC"})`;
  if (schedule.start_time) words += `, from ${fmtTime(schedule.start_time)}`;
  if (schedule.end_time) words += `, until ${fmtTime(schedule.end_time)}`;
  return words;
}

function statusBadge(rr) {
  const enabled = rr.status === "ENABLED";
  return h("span", { class: `badge st-${enabled ? "succeeded" : "skipped"}`, dataset: { status: rr.status } }, enabled ? "Enabled" : "Disabled");
}

async function setEnabled(rr, enabled) {
  await api(`${API}/recurringruns/${enc(rr.recurring_run_id)}:${enabled ? "enable" : "disable"}`, { method: "POST" });
  toast(`${rr.display_name} ${enabled ? "enabled" : "disabled"}`);
}

export async function renderList(root) {
  const search = h("input", { type: "search", placeholder: "name contains…", "aria-label": "filter by name" });
  const holder = h("div", {});
  mount(root, h("h1", {}, "Recurring runs"),
    h("p", { class: "muted" }, "Create one from a pipeline version (Pipelines → a version → Create recurring run)."),
    h("div", { class: "toolbar" }, search), holder);
  const table = pagedTable(holder, {
    className: "recurring-runs",
    empty: "No recurring runs yet.",
    fetchPage: async (token) => {
      const data = await api(`${API}/recurringruns`, { params: {
        page_size: 20, page_token: token, sort_by: "created_at desc",
        filter: kfpFilter([search.value.trim() && { key: "display_name", operation: "IS_SUBSTRING", string_value: search.value.trim() }]),
      } });
      return { items: data.recurringRuns, total_size: data.total_size, next_page_token: data.next_page_token };
    },
    columns: [
      { title: "Name", cell: (r) => h("a", { href: `#/recurringruns/${r.recurring_run_id}` }, r.display_name) },
      { title: "Status", cell: statusBadge },
      { title: "Trigger", cell: (r) => triggerWords(r.trigger) },
      { title: "Next run", cell: (r) => (r.status === "ENABLED" && r.next_fire_times && r.next_fire_times.length ? fmtTime(r.next_fire_times[0]) : "–") },
      { title: "Created", cell: (r) => fmtTime(r.created_at) },
      { title: "", cell: (r) => h("button", { dataset: { action: "toggle-schedule" }, onclick: async () => { await setEnabled(r, r.status !== "ENABLED"); table.reload(); } }, r.status === "ENABLED" ? "Disable" : "Enable") },
    ],
  });
  let typing;
  search.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(() => table.reload(), 300); });
  return () => table.stop();
}

function detailRows(rr) {
  const params = (rr.runtime_config && rr.runtime_config.parameters) || {};
  const ref = rr.pipeline_version_reference;
  const source = ref
    ? h("a", { href: `#/pipelines/${enc(ref.pipeline_id)}${ref.pipeline_version_id ? `?version=${enc(ref.pipeline_version_id)}` : ""}` },
      ref.pipeline_version_id ? "pipeline version" : "pipeline (latest version at each run)")
    : "pipeline spec stored with the schedule";
  const rows = [
    ["Trigger", triggerWords(rr.trigger)],
    ["Max concurrent runs", rr.max_concurrency || "1"],
    ["Missed runs", rr.no_catchup ? "only the latest is started (no catch-up)" : "all are started, oldest first (catch-up)"],
    ["Pipeline", source],
    ["Experiment", rr.experiment_id ? h("a", { href: `#/experiments/${enc(rr.experiment_id)}` }, rr.experiment_id) : "–"],
    ["Parameters", Object.keys(params).length ? h("code", {}, JSON.stringify(params)) : "none"],
    ["Created", fmtTime(rr.created_at)],
    ["Updated", fmtTime(rr.updated_at)],
  ];
  return h("table", { class: "kv" }, h("tbody", {}, rows.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, v)))));
}

export async function renderOne(root, [id]) {
  let rr;
  try {
    rr = await api(`${API}/recurringruns/${enc(id)}`);
  } catch (err) {
    mount(root, h("h1", {}, "Recurring run"), errorBox(err, `Recurring run ${id} cannot be shown`));
    return undefined;
  }
  const header = h("div", {});
  const details = h("div", {});
  const fires = h("ol", { class: "next-fire-times" });
  const runsBox = h("div", { class: "recurring-runs-runs" });
  const problem = h("div", {});
  mount(root, header, problem, details, h("h2", {}, "Next runs"), fires, h("h2", {}, "Runs"), runsBox);

  function paint() {
    mount(header, h("h1", {}, rr.display_name, " ", statusBadge(rr)),
      rr.description ? h("p", {}, rr.description) : null,
      h("div", { class: "toolbar" },
        h("button", { class: "primary", dataset: { action: "toggle-schedule" }, onclick: async () => { await setEnabled(rr, rr.status !== "ENABLED"); await refresh(); } },
          rr.status === "ENABLED" ? "Disable" : "Enable"),
        h("button", { class: "danger", dataset: { action: "delete-schedule" }, onclick: async () => {
          if (!window.confirm(`Delete the recurring run ${rr.display_name}? Its runs stay.`)) return;
          await api(`${API}/recurringruns/${enc(rr.recurring_run_id)}`, { method: "DELETE" });
          toast(`${rr.display_name} deleted`);
          location.hash = "#/recurringruns";
        } }, "Delete")));
    mount(problem, rr.error && rr.error.message ? h("div", { class: "error-box", role: "alert" }, `Last attempt to start a run failed: ${rr.error.message}`) : null);
    mount(details, detailRows(rr));
    const times = rr.next_fire_times || [];
    mount(fires, times.length
      ? times.map((t) => h("li", { dataset: { time: t } }, fmtTime(t), h("span", { class: "muted" }, ` (${t})`)))
      : h("li", { class: "muted" }, "none: the schedule has ended"));
    if (rr.status !== "ENABLED") fires.prepend(h("li", { class: "muted" }, "Disabled: these apply once it is enabled again."));
  }

  const table = pagedTable(runsBox, {
    className: "runs",
    empty: "No runs yet.",
    fetchPage: async (token) => {
      const data = await api(`${API}/runs`, { params: {
        page_size: 20, page_token: token, sort_by: "created_at desc",
        filter: kfpFilter([{ key: "recurring_run_id", operation: "EQUALS", string_value: rr.recurring_run_id }]),
      } });
      return { items: data.runs, total_size: data.total_size, next_page_token: data.next_page_token };
    },
    columns: [
      { title: "Run", cell: (r) => h("a", { href: `#/runs/${r.run_id}` }, r.display_name) },
      { title: "State", cell: (r) => stateBadge(r.state) },
      { title: "Scheduled for", cell: (r) => fmtTime(r.scheduled_at) },
      { title: "Created", cell: (r) => fmtTime(r.created_at) },
      { title: "Finished", cell: (r) => fmtTime(r.finished_at) },
    ],
  });

  async function refresh() {
    try {
      rr = await api(`${API}/recurringruns/${enc(id)}`);
    } catch {
      return; // deleted meanwhile, or the server is away: keep what is shown
    }
    paint();
    table.reload();
  }

  paint();
  const timer = setInterval(refresh, POLL_MS);
  return () => { clearInterval(timer); table.stop(); };
}

/** The trigger fields of the "create recurring run" dialog; `read()` gives the body's part. */
export function triggerFields() {
  const kind = h("select", { name: "trigger_kind", "aria-label": "trigger kind" },
    h("option", { value: "periodic" }, "Periodic"), h("option", { value: "cron" }, "Cron"));
  const interval = h("input", { name: "interval_second", type: "number", min: "1", value: "3600" });
  const cron = h("input", { name: "cron", placeholder: "sec min hour day month weekday, e.g. 0 0 9 * * 1-5", value: "0 0 * * * *" });
  const timezone = h("input", { name: "timezone", value: "UTC", placeholder: "IANA name, e.g. Europe/Paris" });
  const start = h("input", { name: "start_time", type: "datetime-local", step: "1" });
  const end = h("input", { name: "end_time", type: "datetime-local", step: "1" });
  const maxConcurrency = h("input", { name: "max_concurrency", type: "number", min: "1", max: "10", value: "1" });
  const catchup = h("input", { name: "catchup", type: "checkbox", checked: true });
  const words = h("p", { class: "muted trigger-words" });
  const periodicRow = h("div", {}, h("label", {}, "Every (seconds)"), interval);
  const cronRows = h("div", {}, h("div", {}, h("label", {}, "Cron (seconds first)"), cron), h("div", {}, h("label", {}, "Timezone"), timezone));
  const show = () => {
    const isCron = kind.value === "cron";
    periodicRow.hidden = isCron;
    cronRows.hidden = !isCron;
    words.textContent = isCron ? `${cronWords(cron.value)} (${timezone.value || "UTC"})` : everyWords(interval.value);
  };
  for (const el of [kind, interval, cron, timezone]) el.addEventListener("input", show);
  show();
  const iso = (input) => (input.value ? new Date(input.value).toISOString() : undefined);
  return {
    node: h("fieldset", { class: "trigger" }, h("legend", {}, "Schedule"),
      h("div", {}, h("label", {}, "Trigger"), kind), periodicRow, cronRows, words,
      h("div", {}, h("label", {}, "Start (optional)"), start),
      h("div", {}, h("label", {}, "End (optional)"), end),
      h("div", {}, h("label", {}, "Max concurrent runs"), maxConcurrency),
      h("div", {}, h("label", {}, catchup, " Catch up on missed runs")),
      h("p", { class: "muted" }, "Parameter values may use [[ScheduledTime]], [[CurrentTime]] (UTC, or [[ScheduledTime.2006-01-02]] with a Go layout) and [[Index]].")),
    read() {
      const window_ = { start_time: iso(start), end_time: iso(end) };
      const trigger = kind.value === "cron"
        ? { cron_schedule: { cron: cron.value.trim(), timezone: timezone.value.trim() || undefined, ...window_ } }
        : { periodic_schedule: { interval_second: String(interval.value), ...window_ } };
      return { trigger, max_concurrency: String(maxConcurrency.value || "1"), no_catchup: !catchup.checked, mode: "ENABLE" };
    },
  };
}
