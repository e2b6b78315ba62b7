// PatchingGrid: click a cell to run that patch (top-k for clean / corrupted / patched);
// "Run full sweep" fills the grid batch by batch.
import { type RenderProps, listen } from "../shared/anywidget";
import { frame } from "../shared/connection";
import { h, on } from "../shared/dom";
import { HeatmapView } from "../shared/heatmap";
import { request } from "../shared/protocol";
import { RUN_EVENTS, RunStatus, type RunTraits } from "../shared/runs";
import { HEATMAP_EVENTS, type HeatmapTraits, heatmapData } from "../shared/traits";

interface TopToken {
  token: string;
  id: number;
  prob: number;
}

interface Outcome {
  component: string;
  layer: number;
  position: number;
  token: string;
  score: number;
  clean: TopToken[];
  corrupted: TopToken[];
  patched: TopToken[];
}

interface Traits extends HeatmapTraits, RunTraits {
  component: string;
  detail: Outcome | Record<string, never>;
  summary: string;
}

const PATCH_TIMEOUT_MS = 120_000;
const SWEEP_TIMEOUT_MS = 60_000; // the reply comes when the sweep starts, in the background

/** One table: rank rows, a clean / corrupted / patched column each (token, probability, bar). */
function topTable(outcome: Outcome): HTMLTableElement {
  const names = ["clean", "corrupted", "patched"] as const;
  const table = h("table", { className: "lenslab-topk" });
  table.append(h("tr", {}, names.map((name) => h("th", { text: name }))));
  const rows = Math.max(...names.map((name) => outcome[name].length));
  for (let i = 0; i < rows; i++) {
    const tr = h("tr");
    for (const name of names) {
      const t = outcome[name][i];
      const td = h("td");
      td.dataset.list = name;
      if (t) {
        const bar = h("div", { className: "lenslab-bar" }, [h("div")]);
        (bar.firstChild as HTMLDivElement).style.width = `${Math.round(t.prob * 100)}%`;
        td.append(
          h("code", { className: "lenslab-token", text: JSON.stringify(t.token) }),
          ` ${t.prob.toFixed(3)}`,
          bar,
        );
      }
      tr.append(td);
    }
    table.append(tr);
  }
  return table;
}

function render({ model, el }: RenderProps<Traits>): () => void {
  const { root, connection, dispose } = frame(el, model, "patching_grid");
  const title = h("div", { className: "lenslab-title" });
  const summary = h("div", { className: "lenslab-muted" });
  const sweep = h("button", { text: "Run full sweep" });
  const run = new RunStatus(model, connection);
  const status = h("span");
  status.dataset.role = "patch-status";
  const error = h("div", { className: "lenslab-error" });
  const detail = h("div", { className: "lenslab-detail" });
  // A request that fails (no reply, kernel gone) clears its status line: no endless spinner.
  const ask = (content: Record<string, unknown>, timeoutMs: number): void => {
    request(model, content, timeoutMs, connection.signal).catch((e: Error) => {
      if (connection.live) error.textContent = e.message; // else the banner says why
      drawStatus();
    });
  };
  const view = new HeatmapView((layer, position) => {
    if (run.running) {
      // a click during the sweep is refused, and says so (the kernel would refuse it too)
      run.note(`refused: the sweep is running; cancel it or wait, then click layer ${layer}, position ${position} again`, "refused");
      return;
    }
    status.className = "lenslab-busy";
    status.textContent = `patching layer ${layer}, position ${position}…`;
    ask({ kind: "patch", layer, position }, PATCH_TIMEOUT_MS);
  });
  root.append(
    title,
    summary,
    h("div", { className: "lenslab-row" }, [sweep, run.element, status]),
    error,
    h("div", { className: "lenslab-split" }, [view.element, detail]),
  );

  const drawDetail = (): void => {
    const d = model.get("detail");
    if (!("layer" in d)) {
      detail.replaceChildren(h("span", { className: "lenslab-muted", text: "Click a cell to patch it." }));
      return;
    }
    const head = h("div", {
      text: `${d.component} at layer ${d.layer}, position ${d.position} (${JSON.stringify(d.token)}): score ${d.score.toFixed(3)}`,
    });
    head.dataset.score = String(d.score);
    detail.replaceChildren(head, topTable(d as Outcome));
  };
  // The one-cell patch's line; the sweep's progress, time left and Cancel are `run`'s.
  const drawStatus = (): void => {
    const busy = model.get("busy") && connection.live;
    const patching = busy && !run.running;
    status.className = patching ? "lenslab-busy" : "";
    if (!patching) status.textContent = "";
    sweep.disabled = busy;
    if (connection.live) error.textContent = model.get("error");
  };
  const drawGrid = (): void => {
    title.textContent = model.get("title");
    summary.textContent = model.get("summary");
    view.update(heatmapData(model));
  };

  const cleanups = [
    on(sweep, "click", () => {
      sweep.disabled = true;
      ask({ kind: "sweep" }, SWEEP_TIMEOUT_MS);
    }),
    connection.onLost(drawStatus),
    listen(model, `${HEATMAP_EVENTS} change:title change:summary`, drawGrid),
    listen(model, "change:detail", drawDetail),
    listen(model, `${RUN_EVENTS} change:error`, drawStatus),
  ];
  drawGrid();
  drawDetail();
  drawStatus();
  return () => {
    cleanups.forEach((cleanup) => cleanup());
    run.dispose();
    view.dispose();
    dispose();
  };
}

export default { render };
