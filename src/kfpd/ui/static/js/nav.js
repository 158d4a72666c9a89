// The location hash: #/<path>?<query>.

export function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, search = ""] = raw.split("?");
  return { path: path.replace(/\/+$/, "") || "runs", query: new URLSearchParams(search) };
}

/** Change the query part of the current page without re-rendering it. */
export function setQuery(updates, { replace = true } = {}) {
  const { path, query } = parseHash();
  for (const [key, value] of Object.entries(updates)) {
    if (value === undefined || value === null || value === "") query.delete(key);
    else query.set(key, value);
  }
  const text = query.toString();
  const hash = `#/${path}${text ? `?${text}` : ""}`;
  if (replace) history.replaceState(null, "", hash);
  else history.pushState(null, "", hash);
}
