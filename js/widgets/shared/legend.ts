// A heatmap's colour bar: what the colours measure, the gradient, and values along it.
import { type ColorScale, colorAt, formatValue, fraction, ticks } from "./colors";
import { h } from "./dom";

const SAMPLES = 16;

export class Legend {
  readonly element: HTMLDivElement;
  private title: HTMLSpanElement;
  private bar: HTMLDivElement;
  private labels: HTMLDivElement;

  constructor() {
    this.title = h("span", { className: "lenslab-legend-title" });
    this.bar = h("div", { className: "lenslab-legend-bar" });
    this.labels = h("div", { className: "lenslab-legend-ticks" });
    this.element = h("div", { className: "lenslab-legend" }, [
      this.title,
      h("div", { className: "lenslab-legend-scale" }, [this.bar, this.labels]),
    ]);
  }

  update(scale: ColorScale, title: string, light: boolean): void {
    const stops = [...Array(SAMPLES).keys()].map((i) => colorAt(i / (SAMPLES - 1), scale.palette, light));
    this.bar.style.background = `linear-gradient(to right, ${stops.join(", ")})`;
    const kind =
      scale.palette === "diverging" ? "centred on 0" : scale.scale === "linear" ? "" : `${scale.scale} scale`;
    this.title.textContent = [title, kind].filter(Boolean).join(", ");
    const values = ticks(scale);
    this.labels.replaceChildren(
      ...values.map((value, i) => {
        const clipped = scale.scale === "robust" && (i === 0 || i === values.length - 1);
        const prefix = clipped ? (i === 0 ? "≤" : "≥") : "";
        const tick = h("span", { text: `${prefix}${formatValue(value)}` });
        tick.style.left = `${fraction(value, scale) * 100}%`;
        return tick;
      }),
    );
    Object.assign(this.element.dataset, {
      low: String(scale.low),
      high: String(scale.high),
      palette: scale.palette,
      scale: scale.scale,
    });
  }
}
