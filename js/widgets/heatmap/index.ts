// Heatmap widget: a live layers x tokens grid; clicking a cell sets `selected`.
import { type RenderProps, listen } from "../shared/anywidget";
import { frame } from "../shared/connection";
import { h } from "../shared/dom";
import { HeatmapView } from "../shared/heatmap";
import { HEATMAP_EVENTS, type HeatmapTraits, heatmapData } from "../shared/traits";

function render({ model, el }: RenderProps<HeatmapTraits>): () => void {
  const { root, dispose } = frame(el, model, "heatmap");
  const title = h("div", { className: "lenslab-title" });
  const view = new HeatmapView((row, col) => {
    model.set("selected", [row, col]);
    model.save_changes();
  });
  root.append(title, view.element);
  const draw = (): void => {
    title.textContent = model.get("title");
    view.update(heatmapData(model));
  };
  draw();
  const stop = listen(model, `${HEATMAP_EVENTS} change:title`, draw);
  return () => {
    stop();
    view.dispose();
    dispose();
  };
}

export default { render };
