// A task's log, tailed live while the task runs:
// GET /apis/v2beta1/runs/{run}/tasks/{task}/logs?offset=N&limit_bytes=M -> {text, next_offset, complete}.
// At most KEEP_CHARS stay on screen, so a huge log cannot freeze the page.
import { API, ApiError, api } from "./api.js";
import { h } from "./dom.js";

const CHUNK = 64 * 1024;
const KEEP_CHARS = 512 * 1024;
const CHUNKS_PER_TICK = 16;
const POLL_MS = 1000;

export class LogTail {
  constructor(runId, taskId, { downloadHref } = {}) {
    this.runId = runId;
    this.taskId = taskId;
    this.offset = 0;
    this.dropped = 0;
    this.stopped = false;
    this.timer = null;
    this.pre = h("pre", { class: "log", "aria-label": "task log" });
    this.status = h("div", { class: "log-status" }, "Loading log…");
    this.notice = h("div", { class: "notice", hidden: true });
    this.element = h("div", { class: "log-box" }, this.status, this.notice, this.pre,
      downloadHref ? h("a", { href: downloadHref }, "Download the full log") : null);
  }

  start() {
    this.tick();
    return this;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  append(text) {
    if (!text) return;
    const nearBottom = this.pre.scrollHeight - this.pre.scrollTop - this.pre.clientHeight < 40;
    let content = this.pre.textContent + text;
    if (content.length > KEEP_CHARS) {
      const cut = content.length - KEEP_CHARS;
      const lineEnd = content.indexOf("\n", cut);
      const from = lineEnd >= 0 && lineEnd - cut < 4096 ? lineEnd + 1 : cut;
      this.dropped += from;
      content = content.slice(from);
      this.notice.hidden = false;
      this.notice.textContent = `This log is large: the first ${this.dropped.toLocaleString()} characters are hidden; the latest output is shown.`;
    }
    this.pre.textContent = content;
    if (nearBottom) this.pre.scrollTop = this.pre.scrollHeight;
  }

  async tick() {
    if (this.stopped) return;
    let complete = false;
    try {
      for (let i = 0; i < CHUNKS_PER_TICK && !this.stopped; i += 1) {
        const page = await api(`${API}/runs/${encodeURIComponent(this.runId)}/tasks/${encodeURIComponent(this.taskId)}/logs`, {
          params: { offset: this.offset, limit_bytes: CHUNK },
        });
        const text = page.text || "";
        this.append(text);
        const next = Number(page.next_offset ?? this.offset);
        const moved = next > this.offset;
        this.offset = Math.max(this.offset, next);
        complete = Boolean(page.complete) && !moved;
        if (page.complete && !text) complete = true;
        if (!moved || complete) break;
      }
    } catch (err) {
      if (this.stopped) return;
      const missing = err instanceof ApiError && err.status === 404;
      this.status.textContent = missing
        ? `No log for this task yet (${err.message}).`
        : `Could not read the log: ${err.message}`;
      this.timer = setTimeout(() => this.tick(), POLL_MS * 3);
      return;
    }
    if (this.stopped) return;
    const size = `${(this.offset / 1024).toFixed(1)} KiB`;
    if (complete) {
      this.status.textContent = this.offset ? `Log complete (${size}).` : "The task wrote no log output.";
      this.status.dataset.complete = "true";
      return;
    }
    this.status.textContent = `Following the log live… (${size})`;
    this.timer = setTimeout(() => this.tick(), POLL_MS);
  }
}
