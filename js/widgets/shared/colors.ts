// Colour scales for the heatmaps: a sequential palette for magnitudes (linear, log or robust)
// and a diverging one centred on 0 for signed values. Each has a light-theme and a dark-theme
// version, so the low end is never a glaring white block on a dark page.
// Mirrored in python/lenslab/records/grid.py (bounds) and widgets/_html.py (static copies).

export type Palette = "blues" | "diverging";
export type Scale = "linear" | "log" | "robust";

export interface ColorScale {
  palette: Palette;
  scale: Scale;
  low: number;
  high: number;
}

type RGB = [number, number, number];

const STOPS: Record<Palette, { light: RGB[]; dark: RGB[] }> = {
  blues: {
    light: [[247, 251, 255], [107, 174, 214], [8, 48, 107]],
    dark: [[30, 34, 44], [44, 95, 184], [170, 208, 255]],
  },
  diverging: {
    light: [[178, 24, 43], [247, 247, 247], [33, 102, 172]],
    dark: [[232, 96, 86], [42, 42, 48], [92, 156, 240]],
  },
};

/** JupyterLab's theme, read from the page (true outside JupyterLab too). */
export function lightTheme(): boolean {
  return document.body.dataset.jpThemeLight !== "false";
}

export function missingColor(light: boolean): string {
  return light ? "#e8e8e8" : "#3a3a3e";
}

function quantile(sorted: number[], q: number): number {
  if (!sorted.length) return NaN;
  const at = (sorted.length - 1) * q;
  const below = Math.floor(at);
  const above = Math.min(sorted.length - 1, below + 1);
  return sorted[below] + (sorted[above] - sorted[below]) * (at - below);
}

/**
 * The scale's range from the finite values: zmin/zmax where given; for "robust" the 2nd and
 * 98th percentiles (values beyond are drawn at the ends); for "log" the smallest positive
 * value; for "diverging" symmetric around 0.
 */
export function scaleFor(
  values: Float32Array,
  zmin: number | null,
  zmax: number | null,
  palette: Palette,
  scale: Scale,
): ColorScale {
  const known = Array.from(values).filter((v) => Number.isFinite(v) && (scale !== "log" || v > 0));
  known.sort((a, b) => a - b);
  let low = known.length ? known[0] : 0;
  let high = known.length ? known[known.length - 1] : 1;
  if (scale === "robust" && known.length) {
    if (palette === "diverging") {
      const sizes = known.map(Math.abs).sort((a, b) => a - b);
      high = quantile(sizes, 0.98);
      low = -high;
    } else {
      [low, high] = [quantile(known, 0.02), quantile(known, 0.98)];
    }
  }
  low = zmin ?? low;
  high = zmax ?? high;
  if (palette === "diverging") {
    const edge = Math.max(Math.abs(low), Math.abs(high)) || 1;
    return { palette, scale, low: -edge, high: edge };
  }
  if (scale === "log") {
    low = low > 0 ? low : 1e-6;
    high = high > low ? high : low * 10;
  }
  return { palette, scale, low, high: high > low ? high : low + 1 };
}

/** Where `value` falls on the scale, 0..1 (clamped). */
export function fraction(value: number, s: ColorScale): number {
  let x: number;
  if (s.scale === "log" && s.palette !== "diverging") {
    const v = Math.log(Math.max(value, s.low));
    x = (v - Math.log(s.low)) / (Math.log(s.high) - Math.log(s.low) || 1);
  } else {
    x = (value - s.low) / (s.high - s.low || 1);
  }
  return Math.min(1, Math.max(0, x));
}

function mix(stops: RGB[], x: number): RGB {
  const at = x * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(at));
  const t = at - i;
  return [0, 1, 2].map((k) => Math.round(stops[i][k] + (stops[i + 1][k] - stops[i][k]) * t)) as RGB;
}

export function colorAt(x: number, palette: Palette, light: boolean): string {
  const [r, g, b] = mix(STOPS[palette][light ? "light" : "dark"], x);
  return `rgb(${r},${g},${b})`;
}

export function cellColor(value: number, s: ColorScale, light: boolean): string {
  if (!Number.isFinite(value)) return missingColor(light);
  return colorAt(fraction(value, s), s.palette, light);
}

/** Black or white, whichever reads better on the cell's colour. */
export function textColor(value: number, s: ColorScale, light: boolean): string {
  if (!Number.isFinite(value)) return light ? "#222" : "#ddd";
  const [r, g, b] = mix(STOPS[s.palette][light ? "light" : "dark"], fraction(value, s));
  return 0.299 * r + 0.587 * g + 0.114 * b > 140 ? "#111" : "#fff";
}

/** Three significant digits, no trailing zeros: 0.5, 12.3, 1230, 1e-7. */
export function formatValue(v: number): string {
  return String(Number(v.toPrecision(3)));
}

/** Tick values along the legend: the ends, plus 0 (diverging) or a geometric middle (log). */
export function ticks(s: ColorScale): number[] {
  if (s.palette === "diverging") return [s.low, 0, s.high];
  if (s.scale === "log") return [s.low, Math.sqrt(s.low * s.high), s.high];
  return [s.low, (s.low + s.high) / 2, s.high];
}
