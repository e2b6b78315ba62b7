/**
 * Rendering: the sidebar's DOM, built from plain data. It asks for data and insertions through
 * `IViewActions` and never talks to a kernel itself.
 */

import {
  accessPath,
  formatCount,
  formatNumber,
  formatShape,
  heatCells,
  sparklinePath
} from './format';
import { IModelInfo, IModuleNode, ISavedSnapshot, ISavedValue } from './protocol';

export interface IViewActions {
  children(model: string, path: string[]): Promise<IModuleNode[]>;
  find(model: string, query: string): Promise<IModuleNode[]>;
  insert(text: string): void;
  refresh(): void;
}

export type StatusKind = 'ready' | 'waiting' | 'error';

const SVG = 'http://www.w3.org/2000/svg';
const SPARK_WIDTH = 96;
const SPARK_HEIGHT = 22;

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

/** The whole sidebar: status line, models with their trees, saved values. */
export class SidebarView {
  readonly node: HTMLElement;

  constructor(private readonly actions: IViewActions) {
    this.node = element('div', 'lenslab-view');
    const header = element('div', 'lenslab-header');
    header.append(element('span', 'lenslab-title', 'lenslab'));
    this._status = element('span', 'lenslab-status');
    header.append(this._status);
    const refresh = element('button', 'lenslab-refresh jp-Button', '↻');
    refresh.title = 'Refresh';
    refresh.addEventListener('click', () => this.actions.refresh());
    header.append(refresh);
    this.node.append(header);

    const models = element('section', 'lenslab-section lenslab-models-section');
    models.append(element('h3', 'lenslab-section-title', 'Models'));
    this._models = element('div', 'lenslab-models');
    models.append(this._models);
    this.node.append(models);

    const saved = element('section', 'lenslab-section lenslab-saved-section');
    this._savedTitle = element('h3', 'lenslab-section-title', 'Saved by the last trace');
    saved.append(this._savedTitle);
    this._saved = element('div', 'lenslab-saved');
    saved.append(this._saved);
    this.node.append(saved);
    this.setModels([]);
    this.setSaved(null);
  }

  /** The access path of the module clicked last, for the insert command. */
  get selectedPath(): string | null {
    return this._selected;
  }

  /** What the refresh button does. */
  refreshNow(): void {
    this.actions.refresh();
  }

  setStatus(text: string, kind: StatusKind): void {
    this._status.textContent = text;
    this._status.dataset.kind = kind;
  }

  setModels(models: IModelInfo[]): void {
    const names = new Set(models.map(model => model.name));
    for (const [name, card] of this._cards) {
      if (!names.has(name)) {
        card.node.remove();
        this._cards.delete(name);
      }
    }
    for (const model of models) {
      let card = this._cards.get(model.name);
      if (card === undefined) {
        card = new ModelCard(model, this.actions, path => this._select(path));
        this._cards.set(model.name, card);
      }
      card.update(model);
      this._models.append(card.node); // keeps the kernel's order
    }
    this._models.querySelector('.lenslab-empty')?.remove();
    if (models.length === 0) {
      this._models.append(
        element('div', 'lenslab-empty', 'No lenslab models in this kernel yet.')
      );
    }
  }

  setSaved(snapshot: ISavedSnapshot | null): void {
    this._saved.replaceChildren();
    if (snapshot === null || snapshot.values.length === 0) {
      const text =
        snapshot === null || snapshot.trace === 0
          ? 'Run a trace with .save() to see its values here.'
          : 'The last trace saved nothing.';
      this._saved.append(element('div', 'lenslab-empty', text));
      return;
    }
    this._savedTitle.textContent = `Saved by the last trace (#${snapshot.trace})`;
    // The user's own values first; what lenslab's widgets and tools saved in their own traces
    // is listed apart, under the name of the widget or tool, and never replaces them.
    const mine = snapshot.values.filter(value => !value.origin);
    const own = snapshot.values.filter(value => value.origin);
    if (mine.length > 0) {
      this._saved.append(savedTable(mine));
    } else {
      this._saved.append(
        element('div', 'lenslab-empty', 'Run a trace with .save() to see its values here.')
      );
    }
    if (own.length > 0) {
      const origins = [...new Set(own.map(value => value.origin))].join(', ');
      const group = element('div', 'lenslab-saved-own');
      group.append(
        element('h4', 'lenslab-saved-origin', `From lenslab's own traces (${origins})`),
        savedTable(own)
      );
      this._saved.append(group);
    }
  }

  clear(): void {
    this.setModels([]);
    this.setSaved(null);
    this._savedTitle.textContent = 'Saved by the last trace';
  }

  private _select(path: string): void {
    this._selected = path;
    this.actions.insert(path);
  }

  private _status: HTMLElement;
  private _models: HTMLElement;
  private _saved: HTMLElement;
  private _savedTitle: HTMLElement;
  private _cards = new Map<string, ModelCard>();
  private _selected: string | null = null;
}

/** One model: a header line, and (expanded) a filter box and its lazy module tree. */
class ModelCard {
  readonly node: HTMLElement;

  constructor(
    model: IModelInfo,
    private readonly actions: IViewActions,
    private readonly select: (path: string) => void
  ) {
    this._name = model.name;
    this.node = element('div', 'lenslab-model');
    this.node.dataset.model = model.name;
    this._header = element('div', 'lenslab-model-header');
    this._header.addEventListener('click', () => this.toggle());
    this.node.append(this._header);
    this._body = element('div', 'lenslab-model-body');
    this._body.hidden = true;
    const filter = element('input', 'lenslab-filter jp-mod-styled');
    filter.placeholder = 'Filter modules by name';
    filter.addEventListener('input', () => void this._filter(filter.value));
    this._body.append(
      filter,
      element('div', 'lenslab-hint', 'Click a module to insert its path. Shapes: a scan of a short prompt.')
    );
    this._tree = element('ul', 'lenslab-tree');
    this._found = element('ul', 'lenslab-tree lenslab-found');
    this._found.hidden = true;
    this._body.append(this._tree, this._found);
    this.node.append(this._body);
  }

  update(model: IModelInfo): void {
    this._header.replaceChildren(
      element('span', 'lenslab-caret', this._body.hidden ? '▸' : '▾'),
      element('span', 'lenslab-model-name', model.name),
      element(
        'span',
        'lenslab-model-meta',
        `${model.wrapper} · ${model.cls} · ${formatCount(model.params)} params · ` +
          `${model.device} · ${model.dtype}`
      )
    );
  }

  toggle(): void {
    this._body.hidden = !this._body.hidden;
    this.node.classList.toggle('lenslab-mod-expanded', !this._body.hidden);
    const caret = this._header.querySelector('.lenslab-caret');
    if (caret) {
      caret.textContent = this._body.hidden ? '▸' : '▾';
    }
    if (!this._body.hidden && !this._loaded) {
      this._loaded = true;
      void this._expand(this._tree, []);
    }
  }

  private async _expand(list: HTMLElement, path: string[]): Promise<void> {
    list.replaceChildren(element('li', 'lenslab-loading', 'loading…'));
    try {
      const nodes = await this.actions.children(this._name, path);
      list.replaceChildren(...nodes.map(node => this._row(node, true)));
    } catch (error) {
      list.replaceChildren(element('li', 'lenslab-error', String(error)));
    }
  }

  private _row(node: IModuleNode, expandable: boolean): HTMLElement {
    const item = element('li', node.kind === 'call' ? 'lenslab-node lenslab-node-call' : 'lenslab-node');
    item.dataset.path = node.path.join('.');
    const row = element('div', 'lenslab-node-row');
    const toggle = element('span', 'lenslab-node-toggle');
    const children = element('ul', 'lenslab-tree');
    children.hidden = true;
    if (expandable && node.children + node.calls > 0) {
      toggle.textContent = '▸';
      toggle.addEventListener('click', event => {
        event.stopPropagation();
        children.hidden = !children.hidden;
        toggle.textContent = children.hidden ? '▸' : '▾';
        if (!children.hidden && children.childElementCount === 0) {
          void this._expand(children, node.path);
        }
      });
    }
    const path = accessPath(this._name, node.path);
    const label = element('span', 'lenslab-node-label');
    label.title = `Insert ${path}`;
    label.append(
      element('span', 'lenslab-node-key', expandable ? node.key : node.path.join('.')),
      element('span', 'lenslab-node-cls', node.cls)
    );
    if (node.shape !== null) {
      const shape = element('span', 'lenslab-node-shape', node.shape);
      shape.title = node.shape;
      label.append(shape);
    }
    label.addEventListener('click', () => this.select(path));
    row.append(toggle, label);
    item.append(row, children);
    return item;
  }

  private async _filter(query: string): Promise<void> {
    const token = ++this._filterToken;
    if (query.trim() === '') {
      this._found.hidden = true;
      this._tree.hidden = false;
      return;
    }
    try {
      const nodes = await this.actions.find(this._name, query);
      if (token !== this._filterToken) {
        return; // a newer query is on its way
      }
      this._found.replaceChildren(...nodes.map(node => this._row(node, false)));
      if (nodes.length === 0) {
        this._found.append(element('li', 'lenslab-empty', 'No module matches.'));
      }
    } catch (error) {
      this._found.replaceChildren(element('li', 'lenslab-error', String(error)));
    }
    this._tree.hidden = true;
    this._found.hidden = false;
  }

  private _name: string;
  private _header: HTMLElement;
  private _body: HTMLElement;
  private _tree: HTMLElement;
  private _found: HTMLElement;
  private _loaded = false;
  private _filterToken = 0;
}

function savedTable(values: ISavedValue[]): HTMLElement {
  const table = element('table', 'lenslab-saved-table');
  const head = element('tr', 'lenslab-saved-head');
  for (const label of ['name', 'shape', 'min / mean / max', '']) {
    head.append(element('th', '', label));
  }
  table.append(head);
  for (const value of values) {
    table.append(renderSavedRow(value));
  }
  return table;
}

export function renderSavedRow(value: ISavedValue): HTMLElement {
  const row = element('tr', 'lenslab-saved-row');
  row.dataset.name = value.name;
  row.dataset.origin = value.origin ?? '';
  const name = element('td', 'lenslab-saved-name', value.name);
  const shape = element('td', 'lenslab-saved-shape');
  shape.textContent =
    value.shape === null ? value.kind : `${formatShape(value.shape)} ${value.dtype ?? ''}`;
  const stats = element(
    'td',
    'lenslab-saved-stats',
    value.min === null
      ? '–'
      : `${formatNumber(value.min)} / ${formatNumber(value.mean)} / ${formatNumber(value.max)}`
  );
  const plot = element('td', 'lenslab-saved-plot');
  if (value.heat !== null) {
    plot.append(renderHeatmap(value.heat, value.name, value.shape));
  } else if (value.spark !== null) {
    plot.append(renderSparkline(value.spark));
  }
  row.append(name, shape, stats, plot);
  return row;
}

export function renderSparkline(values: number[]): SVGElement {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('class', 'lenslab-sparkline');
  svg.setAttribute('width', String(SPARK_WIDTH));
  svg.setAttribute('height', String(SPARK_HEIGHT));
  svg.setAttribute('viewBox', `-1 -1 ${SPARK_WIDTH + 2} ${SPARK_HEIGHT + 2}`);
  const line = document.createElementNS(SVG, 'path');
  line.setAttribute('d', sparklinePath(values, SPARK_WIDTH, SPARK_HEIGHT));
  svg.append(line);
  return svg;
}

/**
 * Where cell (`r`, `c`) of a downsampled grid comes from in the value: ``h[0, 3, 96:108]``
 * (the leading indices are 0, as the kernel took the first matrix; ranges where cells were
 * averaged, as adaptive pooling does).
 */
export function cellSource(
  name: string,
  shape: number[] | null,
  rows: number,
  cols: number,
  r: number,
  c: number
): string {
  const span = (i: number, bins: number, size: number): string => {
    const start = Math.floor((i * size) / bins);
    const end = Math.ceil(((i + 1) * size) / bins);
    return end - start <= 1 ? String(start) : `${start}:${end}`;
  };
  if (shape === null || shape.length < 2) {
    return `${name} row ${r}, column ${c}`;
  }
  const lead = shape.slice(0, -2).map(() => '0');
  const [height, width] = shape.slice(-2);
  return `${name}[${[...lead, span(r, rows, height), span(c, cols, width)].join(', ')}]`;
}

export function renderHeatmap(
  grid: number[][],
  name = 'value',
  shape: number[] | null = null
): SVGElement {
  const rows = grid.length;
  const cols = rows ? grid[0].length : 0;
  const cell = Math.max(1, Math.min(4, Math.floor(SPARK_WIDTH / Math.max(cols, 1))));
  const tall = Math.max(cell, 3);
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('class', 'lenslab-heatmap');
  svg.setAttribute('width', String(cols * cell));
  svg.setAttribute('height', String(rows * tall));
  heatCells(grid).forEach((row, y) =>
    row.forEach((value, x) => {
      const rect = document.createElementNS(SVG, 'rect');
      rect.setAttribute('x', String(x * cell));
      rect.setAttribute('y', String(y * tall));
      rect.setAttribute('width', String(cell));
      rect.setAttribute('height', String(tall));
      rect.setAttribute('class', value.sign < 0 ? 'lenslab-neg' : 'lenslab-pos');
      rect.setAttribute('fill-opacity', value.strength.toFixed(2));
      // the hover names the row, the column and the value
      const title = document.createElementNS(SVG, 'title');
      const where = cellSource(name, shape, rows, cols, y, x);
      const pooled = where.includes(':') ? 'mean ' : '';
      title.textContent = `${where}: ${pooled}${formatNumber(grid[y][x])}`;
      rect.append(title);
      svg.append(rect);
    })
  );
  return svg;
}
