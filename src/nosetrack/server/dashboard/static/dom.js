// The two DOM helpers every panel uses. Text goes in as textContent, never as HTML.

export const byId = (id) => document.getElementById(id);

export function element(tag, text = null, className = "") {
  const node = document.createElement(tag);
  if (text != null) node.textContent = text;
  if (className) node.className = className;
  return node;
}
