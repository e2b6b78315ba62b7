// Keyboard inside a widget. JupyterLab's notebook shortcuts listen on the whole document (arrow
// keys move between cells in command mode); while one of our keyboard controls has focus (a
// slider, a chip, a tree row: marked `data-keys`), the host carries Lumino's
// `data-lm-suppress-shortcuts`, so those keys move the control and never the notebook.
import { on } from "./dom";

const SUPPRESS = "data-lm-suppress-shortcuts";

export function keyboardScope(host: HTMLElement, root: HTMLElement): () => void {
  const update = (target: EventTarget | null): void => {
    const keyed = target instanceof HTMLElement && target.closest("[data-keys]") !== null;
    if (keyed) host.setAttribute(SUPPRESS, "true");
    else host.removeAttribute(SUPPRESS);
  };
  const cleanups = [
    on(root, "focusin", (event) => update(event.target)),
    on(root, "focusout", (event) => update(event.relatedTarget)),
  ];
  return () => cleanups.forEach((cleanup) => cleanup());
}

/** The next index for an arrow key in a list of `count` (null for other keys). */
export function step(key: string, index: number, count: number, vertical: boolean): number | null {
  const back = vertical ? "ArrowUp" : "ArrowLeft";
  const forward = vertical ? "ArrowDown" : "ArrowRight";
  if (key === back) return Math.max(0, index - 1);
  if (key === forward) return Math.min(count - 1, index + 1);
  if (key === "Home") return 0;
  if (key === "End") return count - 1;
  return null;
}
