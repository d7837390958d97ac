// OCP Metrics · the few DOM helpers the page's modules share.

export const $ = (sel, root = document) => root.querySelector(sel);

// An element with attributes (`class`, `text`, `on<event>` listeners, others as attributes;
// null and false are left out) and children.
export const h = (tag, attrs = {}, ...kids) => {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids.flat()) if (kid != null) el.append(kid);
  return el;
};

// The page-wide message under the header; an empty message hides it.
export function showBanner(msg) {
  const b = $('#banner');
  b.hidden = !msg;
  b.textContent = msg || '';
}
