// A canvas heatmap: labels, colours, cell text, hover tooltip, click. `update` repaints only
// the cells whose value or text changed, so live updates never rebuild the view. A big grid
// scrolls inside its own box, and its row and column labels are redrawn at the scroll offset,
// so they stay in view (one canvas, so cell geometry is the same everywhere).
import {
  type ColorScale,
  type Palette,
  type Scale,
  cellColor,
  lightTheme,
  scaleFor,
  textColor,
} from "./colors";
import { h, on } from "./dom";
import { Legend } from "./legend";
import { visible } from "./tokens";
import { Tooltip } from "./tooltip";

export interface HeatmapData {
  rows: string[];
  cols: string[];
  values: Float32Array; // rows * cols, NaN = not computed yet
  text: string[][];
  hover: string[][];
  zmin: number | null;
  zmax: number | null;
  colors: Palette; // "blues" (magnitudes) or "diverging" (signed, centred on 0)
  scale: Scale; // "linear", "log" or "robust"
  legend: string; // what the colours measure, shown over the colour bar
  selected: number[]; // [row, col] or []
}

const CELL_H = 16;
const LEFT = 64;
const TOP = 84;
const RIGHT = 90; // room for the last rotated column label

export class HeatmapView {
  readonly element: HTMLDivElement;
  private canvas: HTMLCanvasElement;
  private scroller: HTMLDivElement;
  private frame = 0;
  private tip = new Tooltip();
  private legend = new Legend();
  private scale: ColorScale = { palette: "blues", scale: "linear", low: 0, high: 1 };
  private light = lightTheme();
  private data: HeatmapData | null = null;
  private painted: Float32Array = new Float32Array(0);
  private cellW = 30;
  private cleanups: (() => void)[] = [];

  constructor(private onClick: (row: number, col: number) => void) {
    this.canvas = h("canvas");
    this.canvas.style.cursor = "pointer";
    this.scroller = h("div", { className: "lenslab-scroll" }, [this.canvas]);
    // Save the grid as drawn (labels, colours, cell text); Python's .save() writes SVG / PNG.
    const save = h("button", { text: "Save PNG", title: "Download the grid as a PNG image" });
    save.dataset.role = "save-png";
    const bar = h("div", { className: "lenslab-row" }, [this.legend.element, save]);
    this.element = h("div", { className: "lenslab-heatmap" }, [bar, this.scroller]);
    // Cells and labels take the theme's colours: repaint when JupyterLab switches theme.
    const theme = new MutationObserver(() => {
      this.light = lightTheme();
      if (this.data) this.paintAll();
    });
    theme.observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-light"] });
    this.cleanups.push(
      () => theme.disconnect(),
      () => cancelAnimationFrame(this.frame),
      on(this.scroller, "scroll", () => {
        cancelAnimationFrame(this.frame);
        this.frame = requestAnimationFrame(() => this.data && this.paintAll());
      }),
      on(save, "click", () => this.download()),
      on(this.canvas, "mousemove", (e) => this.hover(e)),
      on(this.canvas, "mouseleave", () => this.tip.hide()),
      on(this.canvas, "click", (e) => {
        const cell = this.cellAt(e);
        if (cell) this.onClick(cell[0], cell[1]);
      }),
    );
  }

  /** Draw `data`: everything when the shape or labels changed, else only changed cells. */
  update(data: HeatmapData): void {
    const old = this.data;
    const scale = scaleFor(data.values, data.zmin, data.zmax, data.colors, data.scale);
    const moved = scale.low !== this.scale.low || scale.high !== this.scale.high;
    this.data = data;
    this.scale = scale;
    const same =
      old !== null &&
      old.rows.length === data.rows.length &&
      old.cols.length === data.cols.length &&
      old.rows.every((r, i) => r === data.rows[i]) &&
      old.cols.every((c, i) => c === data.cols[i]) &&
      old.zmin === data.zmin &&
      old.zmax === data.zmax &&
      old.colors === data.colors &&
      old.scale === data.scale &&
      old.legend === data.legend &&
      hasText(old) === hasText(data) &&
      !moved;
    if (!same) {
      this.layout();
      this.paintAll();
      return;
    }
    const ctx = this.canvas.getContext("2d");
    if (!ctx) return;
    const cols = data.cols.length;
    for (let i = 0; i < data.values.length; i++) {
      const r = Math.floor(i / cols);
      const c = i % cols;
      const changed =
        !Object.is(this.painted[i], data.values[i]) ||
        (data.text[r]?.[c] ?? "") !== (old.text[r]?.[c] ?? "");
      if (changed) this.paintCell(ctx, r, c);
    }
    this.paintSelection(ctx, old.selected);
    this.painted = data.values.slice();
    if (this.scroller.scrollLeft || this.scroller.scrollTop) this.paintLabels(ctx);
  }

  /** Download the canvas as `lenslab-heatmap.png` (a data URL: no server round trip). */
  download(name = "lenslab-heatmap.png"): string {
    const url = this.canvas.toDataURL("image/png");
    const link = h("a");
    link.href = url;
    link.download = name;
    link.click();
    return url;
  }

  /** Remove every listener and the tooltip. */
  dispose(): void {
    for (const cleanup of this.cleanups) cleanup();
    this.tip.dispose();
  }

  private layout(): void {
    const data = this.data!;
    this.cellW = hasText(data) ? 56 : 30;
    const ratio = window.devicePixelRatio || 1;
    const width = LEFT + this.cellW * data.cols.length + RIGHT;
    const height = TOP + CELL_H * data.rows.length + 4;
    this.canvas.width = width * ratio;
    this.canvas.height = height * ratio;
    this.canvas.style.width = `${width}px`;
    this.canvas.style.height = `${height}px`;
    this.canvas.getContext("2d")?.setTransform(ratio, 0, 0, ratio, 0, 0);
  }

  private paintAll(): void {
    const data = this.data!;
    this.count("fullPaints");
    const ctx = this.canvas.getContext("2d");
    if (!ctx) return;
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    this.legend.update(this.scale, data.legend, this.light);
    for (let r = 0; r < data.rows.length; r++) {
      for (let c = 0; c < data.cols.length; c++) this.paintCell(ctx, r, c);
    }
    this.paintSelection(ctx, []);
    this.painted = data.values.slice();
    this.paintLabels(ctx);
  }

  /** Row and column labels on bands at the scroll offset (opaque when scrolled over cells). */
  private paintLabels(ctx: CanvasRenderingContext2D): void {
    const data = this.data!;
    const [x0, y0] = [this.scroller.scrollLeft, this.scroller.scrollTop];
    const style = getComputedStyle(this.element);
    if (x0 || y0) {
      const background = this.light ? "#ffffff" : "#111111";
      ctx.fillStyle = style.getPropertyValue("--jp-layout-color0").trim() || background;
      ctx.fillRect(x0, y0, this.canvas.clientWidth, TOP); // column labels
      ctx.fillRect(x0, y0, LEFT, this.canvas.clientHeight); // row labels
    }
    ctx.fillStyle = style.color || "#333"; // follows the theme
    ctx.font = "11px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    ctx.textAlign = "right";
    data.rows.forEach((label, r) => {
      const y = TOP + r * CELL_H + CELL_H / 2;
      if (y > y0 + TOP) ctx.fillText(label, x0 + LEFT - 4, y);
    });
    data.cols.forEach((label, c) => {
      const x = LEFT + c * this.cellW + this.cellW / 2;
      if (x < x0 + LEFT) return;
      ctx.save();
      ctx.translate(x, y0 + TOP - 4);
      ctx.rotate(-Math.PI / 4);
      ctx.textAlign = "left";
      ctx.fillText(label.length > 18 ? `${label.slice(0, 17)}…` : label, 0, 0);
      ctx.restore();
    });
  }

  /** Counters in data-* attributes, so a browser test can see that updates stay partial. */
  private count(name: "fullPaints" | "cellPaints"): void {
    const box = this.scroller.dataset; // the canvas's parent
    box[name] = String(Number(box[name] ?? 0) + 1);
  }

  private paintCell(ctx: CanvasRenderingContext2D, r: number, c: number): void {
    const data = this.data!;
    this.count("cellPaints");
    const value = data.values[r * data.cols.length + c];
    const x = LEFT + c * this.cellW;
    const y = TOP + r * CELL_H;
    ctx.fillStyle = cellColor(value, this.scale, this.light);
    ctx.fillRect(x, y, this.cellW - 1, CELL_H - 1);
    const raw = data.text[r]?.[c];
    if (raw) {
      const text = visible(raw);
      ctx.fillStyle = textColor(value, this.scale, this.light);
      ctx.font = "10px system-ui, sans-serif";
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      let shown = text;
      while (shown.length > 1 && ctx.measureText(shown).width > this.cellW - 4) {
        shown = shown.slice(0, -1);
      }
      if (shown !== text) shown = `${shown.slice(0, -1)}…`;
      ctx.fillText(shown, x + this.cellW / 2, y + CELL_H / 2);
    }
  }

  private paintSelection(ctx: CanvasRenderingContext2D, previous: number[]): void {
    const data = this.data!;
    if (previous.length === 2) this.paintCell(ctx, previous[0], previous[1]);
    if (data.selected.length !== 2) return;
    const [r, c] = data.selected;
    ctx.strokeStyle = this.light ? "#111" : "#fff";
    ctx.lineWidth = 2;
    ctx.strokeRect(LEFT + c * this.cellW + 1, TOP + r * CELL_H + 1, this.cellW - 3, CELL_H - 3);
  }

  private cellAt(event: MouseEvent): [number, number] | null {
    const data = this.data;
    if (!data) return null;
    const view = this.scroller.getBoundingClientRect();
    if (event.clientX - view.left < LEFT || event.clientY - view.top < TOP) return null; // labels
    const box = this.canvas.getBoundingClientRect();
    const c = Math.floor((event.clientX - box.left - LEFT) / this.cellW);
    const r = Math.floor((event.clientY - box.top - TOP) / CELL_H);
    if (r < 0 || c < 0 || r >= data.rows.length || c >= data.cols.length) return null;
    return [r, c];
  }

  private hover(event: MouseEvent): void {
    const cell = this.cellAt(event);
    const data = this.data;
    if (!cell || !data) {
      this.tip.hide();
      return;
    }
    const [r, c] = cell;
    const value = data.values[r * data.cols.length + c];
    const extra = data.hover[r]?.[c];
    const shown = Number.isFinite(value) ? value.toFixed(3) : "not computed";
    const token = data.text[r]?.[c];
    const detail = extra || (token ? JSON.stringify(token) : ""); // the whole token, uncut
    const text = `${data.rows[r]}, ${data.cols[c]}: ${shown}${detail ? `\n${detail}` : ""}`;
    this.tip.show(text, event.clientX, event.clientY);
  }
}

function hasText(data: HeatmapData): boolean {
  return data.text.some((row) => row.some((t) => t));
}
