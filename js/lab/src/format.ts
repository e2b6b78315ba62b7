/**
 * Pure helpers for the sidebar: numbers, access paths, sparklines and heatmaps.
 */

/** 134515008 -> "134.5M". */
export function formatCount(count: number): string {
  const units: [number, string][] = [
    [1e12, 'T'],
    [1e9, 'B'],
    [1e6, 'M'],
    [1e3, 'K']
  ];
  for (const [size, unit] of units) {
    if (Math.abs(count) >= size) {
      return `${(count / size).toFixed(1).replace(/\.0$/, '')}${unit}`;
    }
  }
  return String(count);
}

/** A statistic for the table: 4 significant digits, "–" when missing. */
export function formatNumber(value: number | null): string {
  if (value === null || !Number.isFinite(value)) {
    return '–';
  }
  if (value !== 0 && (Math.abs(value) >= 1e4 || Math.abs(value) < 1e-3)) {
    return value.toExponential(2);
  }
  return String(Number(value.toPrecision(4)));
}

export function formatShape(shape: number[] | null): string {
  return shape === null ? '' : `[${shape.join(', ')}]`;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The Python expression reaching a module: ("model", ["model", "layers", "5", "mlp"], "output")
 * -> "model.model.layers[5].mlp.output".
 */
export function accessPath(variable: string, path: string[], attribute = 'output'): string {
  let text = variable;
  for (const key of path) {
    if (/^\d+$/.test(key)) {
      text += `[${key}]`;
    } else if (IDENTIFIER.test(key)) {
      text += `.${key}`;
    } else {
      text += `[${JSON.stringify(key)}]`;
    }
  }
  return attribute ? `${text}.${attribute}` : text;
}

/** An SVG path ("M x y L ...") drawing `values` inside width x height. */
export function sparklinePath(values: number[], width: number, height: number): string {
  if (values.length === 0) {
    return '';
  }
  const low = Math.min(...values);
  const high = Math.max(...values);
  const span = high - low || 1;
  const step = values.length > 1 ? width / (values.length - 1) : 0;
  return values
    .map((value, index) => {
      const x = index * step;
      const y = high === low ? height / 2 : height - ((value - low) / span) * height;
      return `${index === 0 ? 'M' : 'L'}${x.toFixed(1)} ${y.toFixed(1)}`;
    })
    .join(' ');
}

/**
 * Per cell of a heatmap: its sign and strength in [0, 1]. Strength is |value| over the 95th
 * percentile of |values| (clipped at 1), so one outlier does not wash out the rest.
 */
export function heatCells(grid: number[][]): { sign: 1 | -1; strength: number }[][] {
  const magnitudes = grid.flat().map(Math.abs).sort((a, b) => a - b);
  const scale = magnitudes.length
    ? magnitudes[Math.floor(0.95 * (magnitudes.length - 1))] || magnitudes[magnitudes.length - 1]
    : 0;
  return grid.map(row =>
    row.map(value => ({
      sign: value < 0 ? -1 : 1,
      strength: scale === 0 ? 0 : Math.min(1, Math.abs(value) / scale)
    }))
  );
}
