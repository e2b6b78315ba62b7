// PatchingGrid: click a cell to run that patch (top-k for clean / corrupted / patched);
// "Run full sweep" fills the grid batch by batch.
import { type RenderProps, listen } from "../shared/anywidget";
import { h, mount, on } from "../shared/dom";
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

function topList(title: string, tokens: TopToken[]): HTMLDivElement {
  const table = h("table", { className: "lenslab-topk" });
  for (const t of tokens) {
    const bar = h("div", { className: "lenslab-bar" }, [h("div")]);
    bar.style.width = "80px";
    (bar.firstChild as HTMLDivElement).style.width = `${Math.round(t.prob * 100)}%`;
    const row = h("tr", {}, [
      h("td", { className: "lenslab-code", text: JSON.stringify(t.token) }),
      h("td", { text: t.prob.toFixed(3) }),
    ]);
    row.append(h("td", {}, [bar]));
    table.append(row);
  }
  const column = h("div", {}, [h("b", { text: title }), table]);
  column.dataset.list = title;
  return column;
}

function render({ model, el }: RenderProps<Traits>): () => void {
  const root = mount(el);
  const abort = new AbortController();
  const title = h("div", { className: "lenslab-title" });
  const summary = h("div", { className: "lenslab-muted" });
  const sweep = h("button", { text: "Run full sweep" });
  const bar = h("div", { className: "lenslab-bar" }, [h("div")]);
  const status = h("span");
  const error = h("div", { className: "lenslab-error" });
  const detail = h("div", { className: "lenslab-detail" });
  const view = new HeatmapView((layer, position) => {
    status.textContent = `patching layer ${layer}, position ${position}…`;
    request(model, { kind: "patch", layer, position }, PATCH_TIMEOUT_MS, abort.signal).catch(
      (e: Error) => (error.textContent = e.message),
    );
  });
  root.append(
    title,
    summary,
    h("div", { className: "lenslab-row" }, [sweep, bar, status]),
    error,
    h("div", { className: "lenslab-columns" }, [h("div", {}, [view.element]), detail]),
  );
  (detail.parentElement as HTMLElement).style.alignItems = "flex-start";

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
    detail.replaceChildren(
      head,
      h("div", { className: "lenslab-columns" }, [
        topList("clean", d.clean),
        topList("corrupted", d.corrupted),
        topList("patched", d.patched),
      ]),
    );
  };
  const drawStatus = (): void => {
    const busy = model.get("busy");
    const progress = model.get("progress");
    (bar.firstChild as HTMLDivElement).style.width = `${Math.round(progress * 100)}%`;
    status.className = busy ? "lenslab-busy" : "";
    if (!busy) status.textContent = progress >= 1 ? "sweep done" : "";
    else if (progress > 0) status.textContent = `sweeping… ${Math.round(progress * 100)}%`;
    sweep.disabled = busy;
    error.textContent = model.get("error");
  };
  const drawGrid = (): void => {
    title.textContent = model.get("title");
    summary.textContent = model.get("summary");
    view.update(heatmapData(model));
  };

  const cleanups = [
    on(sweep, "click", () => {
      status.textContent = "sweeping…";
      request(model, { kind: "sweep" }, SWEEP_TIMEOUT_MS, abort.signal).catch(
        (e: Error) => (error.textContent = e.message),
      );
    }),
    listen(model, `${HEATMAP_EVENTS} change:title change:summary`, drawGrid),
    listen(model, "change:detail", drawDetail),
    listen(model, "change:busy change:progress change:error", drawStatus),
  ];
  drawGrid();
  drawDetail();
  drawStatus();
  return () => {
    abort.abort();
    cleanups.forEach((cleanup) => cleanup());
    view.dispose();
  };
}

export default { render };
