import {
  accessPath,
  formatCount,
  formatNumber,
  formatShape,
  heatCells,
  sparklinePath
} from '../src/format';

describe('format', () => {
  it('counts parameters briefly', () => {
    expect(formatCount(134515008)).toBe('134.5M');
    expect(formatCount(15)).toBe('15');
    expect(formatCount(2000)).toBe('2K');
    expect(formatCount(7.2e9)).toBe('7.2B');
  });

  it('writes statistics with 4 digits', () => {
    expect(formatNumber(null)).toBe('–');
    expect(formatNumber(3.14159)).toBe('3.142');
    expect(formatNumber(0)).toBe('0');
    expect(formatNumber(123456)).toBe('1.23e+5');
    expect(formatShape([1, 2, 576])).toBe('[1, 2, 576]');
  });

  it('builds the access path the user would type', () => {
    expect(accessPath('model', ['model', 'layers', '5', 'mlp'])).toBe(
      'model.model.layers[5].mlp.output'
    );
    expect(accessPath('net', ['0'], 'input')).toBe('net[0].input');
    expect(accessPath('m', ['odd-name'], '')).toBe('m["odd-name"]');
  });

  it('draws a sparkline inside its box', () => {
    expect(sparklinePath([], 10, 10)).toBe('');
    expect(sparklinePath([0, 1, 0], 10, 10)).toBe('M0.0 10.0 L5.0 0.0 L10.0 10.0');
    expect(sparklinePath([2, 2], 10, 10)).toBe('M0.0 5.0 L10.0 5.0');
  });

  it('scales heatmap cells by a high percentile, so outliers do not wash it out', () => {
    expect(heatCells([[1, -2], [0, 0.5]])).toEqual([
      [
        { sign: 1, strength: 1 },
        { sign: -1, strength: 1 }
      ],
      [
        { sign: 1, strength: 0 },
        { sign: 1, strength: 0.5 }
      ]
    ]);
    const spiky = heatCells([[...Array(99).fill(1), 500]]);
    expect(spiky[0][0].strength).toBe(1);
    expect(heatCells([[0]])).toEqual([[{ sign: 1, strength: 0 }]]);
  });
});
