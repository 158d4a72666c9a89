// A paged table over a KFP list call (keyset page tokens, so "previous" replays kept tokens).
import { errorBox } from "./api.js";
import { h, mount } from "./dom.js";

/**
 * @param container where the table goes
 * @param fetchPage async (pageToken) => {items, total_size, next_page_token}
 * @param columns [{title, cell: (item) => node|string}]
 * @param empty text when there is nothing
 * Returns {reload, stop}.
 */
export function pagedTable(container, { fetchPage, columns, empty, className = "" }) {
  const tokens = [""];
  let page = 0;
  let generation = 0;
  const body = h("div", {});
  const pager = h("div", { class: "pager" });
  mount(container, body, pager);

  async function load() {
    const mine = ++generation;
    let data;
    try {
      data = await fetchPage(tokens[page]);
    } catch (err) {
      if (mine === generation) mount(body, errorBox(err));
      return;
    }
    if (mine !== generation) return;
    const items = data.items || [];
    mount(body, items.length
      ? h("table", { class: `list ${className}` },
        h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c.title)))),
        h("tbody", {}, items.map((item) => h("tr", {}, columns.map((c) => h("td", {}, c.cell(item)))))))
      : h("p", { class: "muted" }, empty || "Nothing here yet."));
    const pages = Math.max(1, Math.ceil((data.total_size || 0) / (data.page_size || 20)));
    mount(pager,
      h("button", { disabled: page === 0, onclick: () => { page -= 1; load(); } }, "‹ Previous"),
      h("span", { class: "muted" }, `page ${page + 1} of ${pages} · ${data.total_size || 0} total`),
      h("button", { disabled: !data.next_page_token, onclick: () => { tokens[page + 1] = data.next_page_token; page += 1; load(); } }, "Next ›"));
  }

  load();
  return {
    reload() { tokens.length = 1; page = 0; load(); },
    stop() { generation += 1; },
  };
}
