// Small DOM helpers and the shared stylesheet (every class is prefixed lenslab-).

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: { className?: string; text?: string; title?: string } = {},
  children: (Node | string)[] = [],
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (props.className) node.className = props.className;
  if (props.text !== undefined) node.textContent = props.text;
  if (props.title !== undefined) node.title = props.title;
  for (const child of children) node.append(child);
  return node;
}

/** Add `listener` and return the function that removes it. */
export function on<K extends keyof HTMLElementEventMap>(
  target: HTMLElement | Document | Window,
  type: K,
  listener: (event: HTMLElementEventMap[K]) => void,
): () => void {
  const handler = listener as EventListener;
  target.addEventListener(type, handler);
  return () => target.removeEventListener(type, handler);
}

/** Float32 values from a bytes trait (a DataView from the kernel, or an ArrayBuffer). */
export function floats(data: DataView | ArrayBuffer | null | undefined): Float32Array {
  if (!data) return new Float32Array(0);
  if (data instanceof ArrayBuffer) return new Float32Array(data.slice(0));
  const copy = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
  return new Float32Array(copy as ArrayBuffer);
}

export function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}

const CSS = `
.lenslab-root { font: 12px/1.4 var(--jp-ui-font-family, system-ui, sans-serif);
  color: var(--jp-ui-font-color1, #222); }
.lenslab-root button { font: inherit; cursor: pointer; }
.lenslab-title { font-weight: 600; margin: 2px 0 6px; }
.lenslab-muted { color: var(--jp-ui-font-color2, #666); }
.lenslab-error { color: var(--jp-error-color1, #b00020); white-space: pre-wrap; }
.lenslab-busy { display: inline-flex; align-items: center; gap: 6px;
  color: var(--jp-ui-font-color2, #555); }
.lenslab-busy::before { content: ""; width: 10px; height: 10px; border-radius: 50%;
  border: 2px solid #89a; border-top-color: transparent; animation: lenslab-spin 0.8s linear infinite; }
@keyframes lenslab-spin { to { transform: rotate(360deg); } }
.lenslab-chips { display: flex; flex-wrap: wrap; gap: 3px; margin: 3px 0 8px; }
.lenslab-chip { border: 1px solid var(--jp-border-color1, #bbc); border-radius: 3px; padding: 1px 5px;
  background: var(--jp-layout-color1, #fff); cursor: pointer;
  min-width: 18px; text-align: center; user-select: none; white-space: pre; }
.lenslab-chip.lenslab-on { background: #2f6fdf; color: #fff; border-color: #2f6fdf; }
.lenslab-row { display: flex; gap: 8px; align-items: center; margin: 4px 0; }
.lenslab-code { font-family: var(--jp-code-font-family, monospace);
  background: var(--jp-layout-color2, #f3f4f7);
  padding: 2px 6px; border-radius: 3px; }
.lenslab-tree { max-height: 420px; overflow: auto; border: 1px solid var(--jp-border-color2, #dde);
  padding: 4px; }
.lenslab-node { display: flex; gap: 6px; align-items: baseline; padding: 1px 2px; cursor: pointer;
  white-space: nowrap; }
.lenslab-node:hover { background: var(--jp-layout-color2, #eef3ff); }
.lenslab-node.lenslab-on { background: rgba(47, 111, 223, 0.28); } /* readable in light and dark */
.lenslab-toggle { width: 12px; display: inline-block; color: var(--jp-ui-font-color2, #667); }
.lenslab-kind { color: var(--jp-success-color1, #5a8f2f); }
.lenslab-shape { color: var(--jp-ui-font-color2, #557); font-family: var(--jp-code-font-family, monospace); }
.lenslab-columns { display: flex; gap: 12px; align-items: flex-start; }
.lenslab-columns > div { flex: 1; border: 1px solid var(--jp-border-color2, #dde); border-radius: 4px;
  padding: 6px; }
.lenslab-text { white-space: pre-wrap; font-family: var(--jp-code-font-family, monospace); }
.lenslab-bar { height: 6px; background: var(--jp-layout-color3, #e4e6ee); border-radius: 3px;
  overflow: hidden; width: 160px; }
.lenslab-bar > div { height: 100%; background: #2f6fdf; }
.lenslab-tip { position: fixed; z-index: 10000; pointer-events: none; background: #fffff4; color: #222;
  border: 1px solid #aa9; padding: 4px 6px; white-space: pre; font: 11px monospace;
  box-shadow: 0 1px 4px rgba(0,0,0,.2); }
.lenslab-split { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
.lenslab-detail { flex: 1 1 340px; min-width: 340px; border: 1px solid var(--jp-border-color2, #dde);
  border-radius: 4px;
  padding: 6px; }
.lenslab-topk { border-collapse: collapse; margin-top: 6px; }
.lenslab-topk th { text-align: left; padding: 0 12px 2px 0; }
.lenslab-topk td { padding: 2px 12px 2px 0; white-space: nowrap; vertical-align: top; }
.lenslab-topk .lenslab-bar { width: 100px; height: 4px; margin-top: 2px; }
.lenslab-token { font-family: var(--jp-code-font-family, monospace); white-space: pre;
  background: var(--jp-layout-color2, #f3f4f7); padding: 0 3px; border-radius: 3px; }
`;

/** A root element with the stylesheet; `el` keeps only it. */
export function mount(el: HTMLElement): HTMLDivElement {
  const style = h("style", { text: CSS });
  const root = h("div", { className: "lenslab-root" });
  el.replaceChildren(style, root);
  return root;
}

/** Call `fn` once `ms` passed without another call; `cancel` drops a pending call. */
export function debounce<A extends unknown[]>(
  fn: (...args: A) => void,
  ms: number,
): { call: (...args: A) => void; cancel: () => void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return {
    call: (...args: A) => {
      clearTimeout(timer);
      timer = setTimeout(() => fn(...args), ms);
    },
    cancel: () => clearTimeout(timer),
  };
}
