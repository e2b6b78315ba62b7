// Heatmap traits as synced by python/lenslab/widgets/heatmap.py.
import type { AnyModel, BaseTraits } from "./anywidget";
import type { Palette, Scale } from "./colors";
import { floats } from "./dom";
import type { HeatmapData } from "./heatmap";

export interface HeatmapTraits extends BaseTraits {
  title: string;
  rows: string[];
  cols: string[];
  values: DataView | ArrayBuffer;
  text: string[][];
  hover: string[][];
  zmin: number | null;
  zmax: number | null;
  colors: Palette;
  scale: Scale;
  legend: string;
  selected: number[];
}

export function heatmapData<T extends HeatmapTraits>(model: AnyModel<T>): HeatmapData {
  return {
    rows: model.get("rows"),
    cols: model.get("cols"),
    values: floats(model.get("values")),
    text: model.get("text"),
    hover: model.get("hover"),
    zmin: model.get("zmin"),
    zmax: model.get("zmax"),
    colors: model.get("colors"),
    scale: model.get("scale"),
    legend: model.get("legend"),
    selected: model.get("selected"),
  };
}

export const HEATMAP_EVENTS =
  "change:rows change:cols change:values change:text change:hover change:zmin change:zmax " +
  "change:colors change:scale change:legend change:selected";
