import { IModuleNode } from '../src/protocol';
import { IViewActions, SidebarView, cellSource } from '../src/widget';
import { insertAtCursor } from '../src/insert';

const model = {
  name: 'model',
  cls: 'LlamaForCausalLM',
  wrapper: 'LanguageModel',
  params: 134515008,
  device: 'cpu',
  dtype: 'float32'
};

function node(path: string[], children = 0, shape: string | null = null, calls = 0): IModuleNode {
  return { key: path[path.length - 1], path, cls: 'Module', children, calls, shape, kind: 'module' };
}

function call(path: string[], name: string, line: string): IModuleNode {
  return { key: name, path: [...path, 'source', name], cls: line, children: 0, calls: 0, shape: null, kind: 'call' };
}

function fakeActions() {
  const inserted: string[] = [];
  const asked: string[][] = [];
  const actions: IViewActions = {
    children: async (_, path) => {
      asked.push(path);
      if (path.length === 0) {
        return [node(['model'], 2), node(['lm_head'], 0, '[1, 2, 49152]', 1)];
      }
      if (path[0] === 'lm_head') {
        return [call(path, 'F_linear_0', 'return F.linear(input, self.weight, self.bias)')];
      }
      return [node([...path, 'layers'], 30)];
    },
    find: async (_, query) => [node(['model', 'layers', '5', query])],
    insert: text => inserted.push(text),
    refresh: () => undefined
  };
  return { actions, inserted, asked };
}

const flush = () => new Promise(resolve => setTimeout(resolve, 0));

describe('SidebarView', () => {
  it('lists models and keeps a card across refreshes', () => {
    const { actions } = fakeActions();
    const view = new SidebarView(actions);
    expect(view.node.querySelector('.lenslab-empty')?.textContent).toContain('No lenslab');
    view.setModels([model]);
    const card = view.node.querySelector('.lenslab-model');
    expect(card?.textContent).toContain('LanguageModel · LlamaForCausalLM · 134.5M params');
    view.setModels([{ ...model, device: 'meta' }]);
    expect(view.node.querySelector('.lenslab-model')).toBe(card);
    view.setModels([]);
    expect(view.node.querySelectorAll('.lenslab-model')).toHaveLength(0);
  });

  it('expands lazily and inserts the clicked path', async () => {
    const { actions, inserted, asked } = fakeActions();
    const view = new SidebarView(actions);
    view.setModels([model]);
    (view.node.querySelector('.lenslab-model-header') as HTMLElement).click();
    await flush();
    expect(asked).toEqual([[]]);
    const rows = view.node.querySelectorAll('.lenslab-node');
    expect(rows).toHaveLength(2);
    expect(rows[1].querySelector('.lenslab-node-shape')?.textContent).toBe('[1, 2, 49152]');
    (rows[0].querySelector('.lenslab-node-toggle') as HTMLElement).click();
    await flush();
    expect(asked).toEqual([[], ['model']]);
    (view.node.querySelector('[data-path="model.layers"] .lenslab-node-label') as HTMLElement).click();
    expect(inserted).toEqual(['model.model.layers.output']);
    expect(view.selectedPath).toBe('model.model.layers.output');
  });

  it('lists a module\'s calls under it and inserts their .source path', async () => {
    const { actions, inserted, asked } = fakeActions();
    const view = new SidebarView(actions);
    view.setModels([model]);
    (view.node.querySelector('.lenslab-model-header') as HTMLElement).click();
    await flush();
    const head = view.node.querySelector('[data-path="lm_head"]') as HTMLElement;
    (head.querySelector('.lenslab-node-toggle') as HTMLElement).click();
    await flush();
    expect(asked).toEqual([[], ['lm_head']]);
    const site = view.node.querySelector('.lenslab-node-call') as HTMLElement;
    expect(site.textContent).toContain('F_linear_0');
    expect(site.textContent).toContain('F.linear(input');
    expect(site.querySelector('.lenslab-node-toggle')?.textContent).toBe('');
    (site.querySelector('.lenslab-node-label') as HTMLElement).click();
    expect(inserted).toEqual(['model.lm_head.source.F_linear_0.output']);
  });

  it('filters through the kernel', async () => {
    const { actions, inserted } = fakeActions();
    const view = new SidebarView(actions);
    view.setModels([model]);
    (view.node.querySelector('.lenslab-model-header') as HTMLElement).click();
    const filter = view.node.querySelector('.lenslab-filter') as HTMLInputElement;
    filter.value = 'mlp';
    filter.dispatchEvent(new Event('input'));
    await flush();
    const found = view.node.querySelector('.lenslab-found') as HTMLElement;
    expect(found.hidden).toBe(false);
    (found.querySelector('.lenslab-node-label') as HTMLElement).click();
    expect(inserted).toEqual(['model.model.layers[5].mlp.output']);
  });

  it('shows saved values with a sparkline or a heatmap', () => {
    const view = new SidebarView(fakeActions().actions);
    const base = { kind: 'Tensor', dtype: 'float32', min: -1, mean: 0.5, max: 2, origin: '' };
    view.setSaved({
      trace: 2,
      values: [
        { ...base, name: 'logits', shape: [1, 49152], spark: [0, 1, 0.5], heat: null },
        { ...base, name: 'hidden', shape: [1, 4, 576], spark: null, heat: [[1, -1], [0, 2]] },
        { ...base, name: 'n', kind: 'int = 3', shape: null, dtype: null, min: null, mean: null,
          max: null, spark: null, heat: null }
      ]
    });
    const rows = view.node.querySelectorAll('.lenslab-saved-row');
    expect([...rows].map(row => (row as HTMLElement).dataset.name)).toEqual([
      'logits',
      'hidden',
      'n'
    ]);
    expect(rows[0].querySelector('.lenslab-sparkline path')?.getAttribute('d')).toMatch(/^M0/);
    expect(rows[1].querySelectorAll('.lenslab-heatmap rect')).toHaveLength(4);
    expect(rows[0].querySelector('.lenslab-saved-stats')?.textContent).toBe('-1 / 0.5 / 2');
    expect(rows[2].textContent).toContain('int = 3');
    expect(view.node.textContent).toContain('Saved by the last trace (#2)');
  });

  it('lists values from lenslab widgets apart, by origin, and heatmap cells name their source', () => {
    const view = new SidebarView(fakeActions().actions);
    const base = { kind: 'Tensor', dtype: 'float32', min: -1, mean: 0.5, max: 2, spark: null };
    view.setSaved({
      trace: 3,
      values: [
        { ...base, name: 'hidden', shape: [1, 4, 576], heat: [[1, -1], [0, 2]], origin: '' },
        { ...base, name: 'saved[0]', shape: [1, 14], heat: null, origin: 'PatchingGrid' }
      ]
    });
    const mine = view.node.querySelectorAll('.lenslab-saved > table .lenslab-saved-row');
    expect([...mine].map(row => (row as HTMLElement).dataset.name)).toEqual(['hidden']);
    const own = view.node.querySelector('.lenslab-saved-own');
    expect(own?.querySelector('h4')?.textContent).toBe("From lenslab's own traces (PatchingGrid)");
    expect(own?.querySelectorAll('.lenslab-saved-row')).toHaveLength(1);
    const titles = [...view.node.querySelectorAll('.lenslab-heatmap rect title')].map(
      t => t.textContent
    );
    expect(titles).toEqual([
      'hidden[0, 0:2, 0:288]: mean 1',
      'hidden[0, 0:2, 288:576]: mean -1',
      'hidden[0, 2:4, 0:288]: mean 0',
      'hidden[0, 2:4, 288:576]: mean 2'
    ]);
    expect(cellSource('h', [3, 5], 3, 5, 1, 4)).toBe('h[1, 4]');
    expect(cellSource('x', null, 2, 2, 0, 1)).toBe('x row 0, column 1');
  });
});

describe('insertAtCursor', () => {
  function fakeNotebook(mode: 'edit' | 'command', source: string) {
    let text = source;
    let cursor = -1;
    const editor = {
      model: { sharedModel: { getSource: () => text, setSource: (s: string) => (text = s) } },
      replaceSelection: (s: string) => (text = text.slice(0, 3) + s + text.slice(3)),
      getPositionAt: (offset: number) => ({ line: 0, column: offset }),
      setCursorPosition: (p: { column: number }) => (cursor = p.column),
      getCursorPosition: () => ({ line: 0, column: 3 }),
      getOffsetAt: () => 3,
      focus: () => undefined
    };
    const content = { mode };
    const tracker = { activeCell: { editor }, currentWidget: { content } };
    return { tracker: tracker as any, text: () => text, content, cursor: () => cursor };
  }

  it('in edit mode, replaces the selection at the cursor', () => {
    const notebook = fakeNotebook('edit', 'x = model');
    expect(insertAtCursor(notebook.tracker, '.layers[5]')).toBe(true);
    expect(notebook.text()).toBe('x =.layers[5] model'); // at the (fake) cursor, offset 3
  });

  it('in command mode, adds a line at the end and enters edit mode after it', () => {
    const notebook = fakeNotebook('command', 'x = 1');
    insertAtCursor(notebook.tracker, 'model.model.layers[5]');
    expect(notebook.text()).toBe('x = 1\nmodel.model.layers[5]');
    expect(notebook.content.mode).toBe('edit');
    expect(notebook.cursor()).toBe(notebook.text().length);
    const empty = fakeNotebook('command', '');
    insertAtCursor(empty.tracker, 'model.lm_head');
    expect(empty.text()).toBe('model.lm_head');
  });
});
