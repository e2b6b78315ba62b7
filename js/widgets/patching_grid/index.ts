// PatchingGrid: click a cell to run that patch (top-k for clean / corrupted / patched);
// "Run full sweep" fills the grid batch by batch.
import { type RenderProps, listen } from "../shared/anywidget";
import { frame } from "../shared/connection";
import { h, on } from "../shared/dom";
import { HeatmapView } from "../shared/heatmap";
import { request } from "../shared/protocol";
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

interface Traits extends HeatmapTraits {
  component: string;
  detail: Outcome | Record<string, never>;
  progress: number;
  summary: string;
}

const PATCH_TIMEOUT_MS = 120_000;
const SWEEP_TIMEOUT_MS = 1_800_000;

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
  const bar = h("div", { className: "lenslab-bar" }, [h("div")]);
  const status = h("span");
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
    status.className = "lenslab-busy";
    status.textContent = `patching layer ${layer}, position ${position}…`;
    ask({ kind: "patch", layer, position }, PATCH_TIMEOUT_MS);
  });
  root.append(
    title,
    summary,
    h("div", { className: "lenslab-row" }, [sweep, bar, status]),
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
  const drawStatus = (): void => {
    const busy = model.get("busy") && connection.live;
    const progress = model.get("progress");
    (bar.firstChild as HTMLDivElement).style.width = `${Math.round(progress * 100)}%`;
    status.className = busy ? "lenslab-busy" : "";
    if (!connection.live) status.textContent = progress > 0 && progress < 1 ? "sweep stopped" : "";
    else if (!busy) status.textContent = progress >= 1 ? "sweep done" : "";
    else if (progress > 0) status.textContent = `sweeping… ${Math.round(progress * 100)}%`;
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
      status.className = "lenslab-busy";
      status.textContent = "sweeping…";
      ask({ kind: "sweep" }, SWEEP_TIMEOUT_MS);
    }),
    connection.onLost(drawStatus),
    listen(model, `${HEATMAP_EVENTS} change:title change:summary`, drawGrid),
    listen(model, "change:detail", drawDetail),
    listen(model, "change:busy change:progress change:error", drawStatus),
  ];
  drawGrid();
  drawDetail();
  drawStatus();
  return () => {
    cleanups.forEach((cleanup) => cleanup());
    view.dispose();
    dispose();
  };
}

export default { render };
