// ModuleTree: expand / collapse lazily, filter by name, click to select, copy the expression.
// Keyboard: Up/Down/Home/End move between rows, Right expands (or enters), Left collapses (or
// goes to the parent), Enter or Space selects; the tree is one tab stop.
import { type RenderProps, type BaseTraits, listen } from "../shared/anywidget";
import { frame } from "../shared/connection";
import { formatCount, h, on } from "../shared/dom";
import { step } from "../shared/keys";

interface Node {
  path: string;
  name: string;
  kind: string;
  parameters: number;
  output: string | null;
  children: Node[];
}

interface Traits extends BaseTraits {
  tree: Node;
  selected: string;
  query: string;
  scanned: string;
}

const MAX_MATCHES = 300;

function render({ model, el }: RenderProps<Traits>): () => void {
  const { root, dispose } = frame(el, model, "module_tree");
  const cleanups: (() => void)[] = [];
  const filter = h("input");
  filter.placeholder = "filter by name, e.g. mlp or layers[5]";
  filter.style.width = "260px";
  filter.value = model.get("query");
  const scanned = h("span", { className: "lenslab-muted" });
  const box = h("div", { className: "lenslab-tree" });
  const expression = h("code", { className: "lenslab-code" });
  const copy = h("button", { text: "Copy" });
  const footer = h("div", { className: "lenslab-row" }, [expression, copy]);
  root.append(h("div", { className: "lenslab-row" }, [filter, scanned]), box, footer);
  const open = new Set<string>(["model"]);
  const rows = new Map<string, HTMLDivElement>();

  const select = (path: string): void => {
    model.set("selected", path);
    model.save_changes();
  };

  const row = (node: Node, depth: number, flat: boolean): HTMLDivElement => {
    const toggle = h("span", {
      className: "lenslab-toggle",
      text: node.children.length && !flat ? (open.has(node.path) ? "▾" : "▸") : "",
    });
    const line = h("div", { className: "lenslab-node", title: node.path }, [
      toggle,
      h("span", { text: flat ? node.path : node.name }),
      h("span", { className: "lenslab-kind", text: node.kind }),
      h("span", { className: "lenslab-muted", text: `${formatCount(node.parameters)} params` }),
      h("span", { className: "lenslab-shape", text: node.output ? `→ ${node.output}` : "" }),
    ]);
    line.dataset.path = node.path;
    line.dataset.keys = "";
    line.tabIndex = -1;
    line.setAttribute("role", "treeitem");
    if (node.children.length && !flat) line.setAttribute("aria-expanded", String(open.has(node.path)));
    line.style.paddingLeft = `${flat ? 2 : depth * 14}px`;
    if (node.path === model.get("selected")) line.classList.add("lenslab-on");
    rows.set(node.path, line);
    return line;
  };

  // Children are built only when their parent is first expanded (a big model stays cheap).
  const branch = (node: Node, depth: number): HTMLDivElement => {
    const wrap = h("div");
    wrap.append(row(node, depth, false));
    if (node.children.length && open.has(node.path)) {
      for (const child of node.children) wrap.append(branch(child, depth + 1));
    }
    return wrap;
  };

  const byPath = new Map<string, Node>();
  const parents = new Map<string, string>();
  const index = (node: Node): void => {
    byPath.set(node.path, node);
    for (const child of node.children) parents.set(child.path, node.path);
    node.children.forEach(index);
  };
  let focusPath = "";

  const draw = (): void => {
    rows.clear();
    byPath.clear();
    parents.clear();
    index(model.get("tree"));
    const query = model.get("query").trim().toLowerCase();
    if (!query) {
      box.replaceChildren(branch(model.get("tree"), 0));
    } else {
      const matches = [...byPath.values()].filter((n) => n.path.toLowerCase().includes(query));
      box.replaceChildren(
        ...matches.slice(0, MAX_MATCHES).map((n) => row(n, 0, true)),
        h("div", {
          className: "lenslab-muted",
          text:
            matches.length > MAX_MATCHES
              ? `${matches.length - MAX_MATCHES} more: refine the filter`
              : `${matches.length} matching`,
        }),
      );
    }
    scanned.textContent = model.get("scanned");
    showSelection();
  };

  const focusRow = (path: string): void => {
    focusPath = path;
    for (const [p, line] of rows) line.tabIndex = p === path ? 0 : -1;
    rows.get(path)?.focus();
  };

  /** Open or close `path` and keep the keyboard focus on it (the rows are rebuilt). */
  const toggle = (path: string): void => {
    if (open.has(path)) open.delete(path);
    else open.add(path);
    draw();
    focusRow(path);
  };

  const showSelection = (): void => {
    const selected = model.get("selected");
    for (const [path, line] of rows) {
      line.classList.toggle("lenslab-on", path === selected);
      line.setAttribute("aria-selected", String(path === selected));
    }
    const stop = rows.has(focusPath) ? focusPath : rows.has(selected) ? selected : rows.keys().next().value;
    for (const [path, line] of rows) line.tabIndex = path === stop ? 0 : -1;
    expression.textContent = selected ? `${selected}.output` : "click a module";
    copy.disabled = !selected;
  };

  cleanups.push(
    on(box, "click", (event) => {
      const line = (event.target as HTMLElement).closest<HTMLElement>(".lenslab-node");
      const path = line?.dataset.path;
      if (!path) return;
      const node = byPath.get(path);
      const onToggle = (event.target as HTMLElement).classList.contains("lenslab-toggle");
      if (node && node.children.length && !model.get("query") && (onToggle || path !== model.get("selected"))) {
        if (open.has(path) && onToggle) open.delete(path);
        else open.add(path);
        draw();
      }
      if (!onToggle) select(path);
    }),
    on(box, "keydown", (event) => {
      const line = (event.target as HTMLElement).closest<HTMLElement>(".lenslab-node");
      const path = line?.dataset.path;
      if (!line || !path) return;
      const lines = [...box.querySelectorAll<HTMLElement>(".lenslab-node")];
      const node = byPath.get(path);
      const nested = !model.get("query") && node !== undefined && node.children.length > 0;
      const next = step(event.key, lines.indexOf(line), lines.length, true);
      if (next !== null) focusRow(lines[next].dataset.path ?? path);
      else if (event.key === "ArrowRight" && nested && !open.has(path)) toggle(path);
      else if (event.key === "ArrowRight" && nested) focusRow(node.children[0].path);
      else if (event.key === "ArrowLeft" && nested && open.has(path)) toggle(path);
      else if (event.key === "ArrowLeft" && parents.has(path)) focusRow(parents.get(path)!);
      else if (event.key === "Enter" || event.key === " ") select(path);
      else return;
      event.preventDefault();
      event.stopPropagation();
    }),
    on(filter, "input", () => {
      model.set("query", filter.value);
      model.save_changes();
    }),
    on(copy, "click", () => {
      const text = expression.textContent ?? "";
      void navigator.clipboard?.writeText(text).then(
        () => (copy.textContent = "Copied"),
        () => {
          const range = document.createRange();
          range.selectNodeContents(expression);
          window.getSelection()?.removeAllRanges();
          window.getSelection()?.addRange(range);
        },
      );
      setTimeout(() => (copy.textContent = "Copy"), 1200);
    }),
    listen(model, "change:tree change:query change:scanned", draw),
    listen(model, "change:selected", showSelection),
  );
  draw();
  return () => {
    cleanups.forEach((cleanup) => cleanup());
    dispose();
  };
}

export default { render };
