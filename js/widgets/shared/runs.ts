// A long run's status line (python/lenslab/widgets/_work.py): a progress bar, "37% · about
// 12 s left", what is queued after it, a Cancel button while it runs, and how the last run
// ended. `note` shows a click's fate for a moment (refused or queued), so no click is silent.
import { type AnyModel, type BaseTraits, listen } from "./anywidget";
import type { Connection } from "./connection";
import { h, on } from "./dom";
import { request } from "./protocol";

export interface RunTraits extends BaseTraits {
  task: string;
  progress: number;
  eta: number;
  queued: string;
  outcome: string;
}

export const RUN_EVENTS = "change:busy change:task change:progress change:eta change:queued change:outcome";

const CANCEL_TIMEOUT_MS = 30_000;
const VERBS: Record<string, string> = { sweep: "sweeping", generate: "generating" };

/** "about 12 s left" / "about 3 min left" / "" (not known yet). */
export function timeLeft(seconds: number): string {
  if (!(seconds >= 0)) return "";
  if (seconds < 1) return "under a second left";
  if (seconds < 90) return `about ${Math.round(seconds)} s left`;
  return `about ${Math.round(seconds / 60)} min left`;
}

export class RunStatus {
  readonly element: HTMLSpanElement;
  private bar = h("div", { className: "lenslab-bar" }, [h("div")]);
  private text = h("span");
  private queue = h("span", { className: "lenslab-muted" });
  private noteText = h("span", { className: "lenslab-note" });
  private cancel = h("button", { text: "Cancel" });
  private cleanups: (() => void)[] = [];
  private noteTimer = 0;

  constructor(
    private model: AnyModel<RunTraits>,
    private connection: Connection,
    private idle: () => string = () => "",
  ) {
    this.cancel.dataset.role = "cancel";
    this.text.dataset.role = "status";
    this.noteText.dataset.role = "note";
    this.element = h("span", { className: "lenslab-row lenslab-run" }, [
      this.bar,
      this.text,
      this.cancel,
      this.queue,
      this.noteText,
    ]);
    this.cleanups.push(
      on(this.cancel, "click", () => {
        this.cancel.disabled = true;
        this.text.textContent = "cancelling…";
        request(model, { kind: "cancel" }, CANCEL_TIMEOUT_MS, connection.signal).catch(() =>
          this.draw(),
        );
      }),
      listen(model, RUN_EVENTS, () => this.draw()),
      connection.onLost(() => this.draw()),
      () => clearTimeout(this.noteTimer),
    );
    this.draw();
  }

  /** Whether a run is going (and the kernel is there to finish it). */
  get running(): boolean {
    return this.model.get("task") !== "" && this.connection.live;
  }

  /** Show what happened to a click or a move (refused, queued) for a few seconds. */
  note(text: string, kind: "refused" | "queued"): void {
    this.noteText.textContent = text;
    this.noteText.dataset.kind = kind;
    clearTimeout(this.noteTimer);
    this.noteTimer = window.setTimeout(() => {
      this.noteText.textContent = "";
    }, 6000);
  }

  draw(): void {
    const task = this.model.get("task");
    const progress = this.model.get("progress");
    const live = this.connection.live;
    const running = task !== "" && live;
    (this.bar.firstChild as HTMLDivElement).style.width = `${Math.round(progress * 100)}%`;
    this.bar.style.visibility = running || progress > 0 ? "visible" : "hidden";
    this.cancel.style.display = running ? "" : "none";
    this.cancel.disabled = false;
    this.text.className = running ? "lenslab-busy" : "";
    const queued = this.model.get("queued");
    this.queue.textContent = running && queued ? `queued next: ${queued}` : "";
    if (!live) {
      this.text.textContent = task ? `${task} stopped` : "";
    } else if (running) {
      const left = timeLeft(this.model.get("eta"));
      const verb = VERBS[task] ?? task;
      this.text.textContent = `${verb}… ${Math.round(progress * 100)}%${left ? ` · ${left}` : ""}`;
    } else {
      this.text.textContent = this.model.get("outcome") || this.idle();
    }
    this.element.dataset.task = running ? task : "";
  }

  dispose(): void {
    this.cleanups.forEach((cleanup) => cleanup());
  }
}
