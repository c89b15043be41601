// Building and finding elements. Text from the database goes in with textContent only.

export const body = document.body;
export const base = body.getAttribute("data-base") || "";

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

export function slug(text) {
  return String(text || "").toLowerCase().replace(/[^a-z0-9-]/g, "");
}

// Replace the one class starting with `prefix` (status-running -> status-failed).
export function setClassPrefix(node, prefix, value) {
  const keep = [...node.classList].filter((name) => !name.startsWith(prefix));
  keep.push(prefix + slug(value));
  node.className = keep.join(" ");
}

export function findRow(tbody, attribute, id) {
  for (const row of tbody.children) {
    if (row.getAttribute(attribute) === id) return row;
  }
  return null;
}

export function showEmpty(id, empty) {
  const node = document.getElementById(id);
  if (node) node.hidden = !empty;
}

export function debounce(fn, wait) {
  let timer = null;
  return () => {
    if (timer !== null) return;
    timer = setTimeout(() => {
      timer = null;
      fn();
    }, wait);
  };
}
