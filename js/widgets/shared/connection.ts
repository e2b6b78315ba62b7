// Whether the widget's kernel side is still there. After a kernel restart or death the widget
// manager drops every message we send, so a reply would never come: we show a banner, stop
// spinners, refuse clicks and abort pending requests instead of waiting forever.
//
// Signs we watch: the model's `comm_live_update` (the manager sets comm_live false on a restart;
// it is never set true again), the kernel's own status (the manager ignores a crash and its
// auto-restart), and, at render, the `jupyter-widgets-disconnected` class of a saved copy. (The
// view's own listener for that class is dropped by anywidget, so it is not updated later.)
import type { AnyModel } from "./anywidget";
import { h, mount, on } from "./dom";
import { keyboardScope } from "./keys";

const DISCONNECTED = "jupyter-widgets-disconnected";

type StatusListener = (sender: unknown, status: string) => void;

/** The part of a JupyterLab kernel connection we read (the widget manager's `kernel`). */
interface KernelLike {
  status?: string;
  connectionStatus?: string;
  statusChanged?: {
    connect(listener: StatusListener): unknown;
    disconnect(listener: StatusListener): unknown;
  };
}

const GONE = new Set(["restarting", "autorestarting", "dead"]);

function kernelOf(model: AnyModel<unknown>): KernelLike | undefined {
  const manager = (model as { widget_manager?: { kernel?: KernelLike | null } }).widget_manager;
  return manager?.kernel ?? undefined;
}

/** Why the kernel side is gone, in words that say what to do. */
function reason(kernel: KernelLike | undefined, atStart: boolean): string {
  if (atStart) return "not connected to a kernel (a saved copy): re-run the cell to use it";
  if (kernel?.status === "dead") return "kernel died: restart it and re-run the cell";
  if (kernel?.connectionStatus === "disconnected") {
    return "lost the connection to the kernel: re-run the cell";
  }
  return "kernel restarted: re-run the cell";
}

export class Connection {
  /** Aborted (with the reason as a message) when the kernel side goes, or on dispose. */
  readonly signal: AbortSignal;
  readonly banner: HTMLDivElement;
  private controller = new AbortController();
  private listeners = new Set<() => void>();
  private cleanups: (() => void)[] = [];
  private why = "";

  constructor(
    el: HTMLElement,
    private model: AnyModel<any>,
    private root: HTMLElement,
  ) {
    this.signal = this.controller.signal;
    this.banner = h("div", { className: "lenslab-banner" });
    this.banner.setAttribute("role", "alert");
    root.prepend(this.banner);
    const kernel = kernelOf(model);
    if (el.classList.contains(DISCONNECTED)) this.lose(reason(kernel, true));
    const lost = (): void => this.lose(reason(kernelOf(this.model), false));
    model.on("comm_live_update", lost);
    this.cleanups.push(() => model.off("comm_live_update", lost));
    const status: StatusListener = (_sender, now) => GONE.has(now) && lost();
    kernel?.statusChanged?.connect(status);
    this.cleanups.push(() => kernel?.statusChanged?.disconnect(status));
    // While disconnected, a click or key press anywhere in the widget only points at the banner.
    for (const type of ["pointerdown", "mousedown", "click", "keydown", "input", "change"] as const) {
      this.cleanups.push(
        on(root, type, (event) => {
          if (this.live) return;
          event.stopPropagation();
          event.preventDefault();
          this.flash();
        }, true),
      );
    }
  }

  get live(): boolean {
    return this.why === "";
  }

  /** Why the widget is disconnected ("" while live). */
  get message(): string {
    return this.why;
  }

  /** Call `listener` when the widget loses its kernel; returns the unsubscribe. */
  onLost(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Mark the kernel side gone (also used when a send fails outright). */
  lose(why: string): void {
    if (!this.live) return;
    this.why = why;
    this.banner.textContent = why;
    this.root.classList.add("lenslab-dead");
    this.root.dataset.connection = "lost";
    console.warn(`[lenslab] ${why}`);
    this.controller.abort(new Error(why));
    for (const listener of [...this.listeners]) listener();
  }

  dispose(): void {
    this.cleanups.forEach((cleanup) => cleanup());
    this.listeners.clear();
    if (this.live) this.controller.abort(new Error("[lenslab] widget view closed"));
  }

  private flash(): void {
    this.banner.classList.remove("lenslab-flash");
    void this.banner.offsetWidth; // restart the outline
    this.banner.classList.add("lenslab-flash");
  }
}

/** A widget's shadow-root frame, its kernel connection and keyboard scope; `dispose` undoes all. */
export function frame(
  el: HTMLElement,
  model: AnyModel<any>,
  name: string,
): { root: HTMLDivElement; connection: Connection; dispose: () => void } {
  const { host, root, cleanup } = mount(el, name);
  const connection = new Connection(el, model, root);
  const keys = keyboardScope(host, root);
  return {
    root,
    connection,
    dispose: () => {
      keys();
      connection.dispose();
      cleanup();
    },
  };
}
