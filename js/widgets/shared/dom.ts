// Small DOM helpers, and the shadow root every widget renders into.
import { CSS } from "./style";

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
  capture = false,
): () => void {
  const handler = listener as EventListener;
  target.addEventListener(type, handler, capture);
  return () => target.removeEventListener(type, handler, capture);
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

/** An open shadow root on a fresh `host`, holding `css`: styles go neither in nor out. */
export function shadow(host: HTMLElement, css: string): ShadowRoot {
  const root = host.attachShadow({ mode: "open" });
  root.append(h("style", { text: css }));
  return root;
}

/**
 * The widget's root element, inside a shadow root on a child of `el` (a child, so a second
 * render on the same `el` gets a fresh shadow root). `cleanup` removes it.
 */
export function mount(
  el: HTMLElement,
  name: string,
): { host: HTMLDivElement; root: HTMLDivElement; cleanup: () => void } {
  const host = h("div", { className: "lenslab-widget" });
  host.dataset.lenslabWidget = name;
  const root = h("div", { className: "lenslab-root" });
  shadow(host, CSS).append(root);
  el.replaceChildren(host);
  return { host, root, cleanup: () => host.remove() };
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
