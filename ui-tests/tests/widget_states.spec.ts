// Every lenslab widget beside the sidebar: styles stay isolated both ways, colour legends, light
// and dark themes, and a kernel restart (in the middle of a sweep) leaves each widget saying so, with no spinner.
// Started by tests/widgets/test_browser.py (it writes states.ipynb and sets LENSLAB_WIDGETS=1).
import { Locator, Page, expect, test } from '@playwright/test';
import { artifacts, cell, output, run as runCell, shot } from './notebook';

const token = process.env.LAB_TOKEN ?? '';

test.skip(!process.env.LENSLAB_WIDGETS, 'started by tests/widgets/test_browser.py');
test.use({ viewport: { width: 1500, height: 1300 } });

const RESTARTED = 'kernel restarted: re-run the cell';
// cells of states.ipynb: 0 loads the model; then one widget each
const TREE = 1;
const PICKER = 2;
const LENS = 3;
const NORMS = 4;
const PANEL = 6;
const GRID = 7;
const WIDE = 8; // a 120 x 120 heatmap, bigger than its box
const ANYWIDGETS = [TREE, PICKER, LENS, NORMS, PANEL, GRID];

const run = (page: Page, index: number) => runCell(page, index, 240000);

// Heatmap canvas geometry (js/widgets/shared/heatmap.ts): margins and cell sizes.
const LEFT = 64;
const TOP = 84;
const CELL_H = 16;
const CELL_W = 30;

/** Red + green + blue of the canvas pixel at (x, y) in CSS pixels. */
async function shade(canvas: Locator, x: number, y: number): Promise<number> {
  return canvas.evaluate(
    (el, [x, y]) => {
      const c = el as HTMLCanvasElement;
      const ratio = c.width / c.clientWidth;
      const [r, g, b] = c.getContext('2d')!.getImageData(x * ratio, y * ratio, 1, 1).data;
      return r + g + b;
    },
    [x, y]
  );
}

/** The shade in the middle of cell (row, col). */
async function cellShade(canvas: Locator, row: number, col: number): Promise<number> {
  return shade(canvas, LEFT + col * CELL_W + CELL_W / 2, TOP + row * CELL_H + CELL_H / 2);
}

async function theme(page: Page, name: string): Promise<void> {
  await page.keyboard.press('Control+Shift+C');
  await page.locator('#command-palette input').fill(`Use Theme: ${name}`);
  await page.keyboard.press('Enter');
  await expect(page.locator('body')).toHaveAttribute(
    'data-jp-theme-light',
    name.includes('Dark') ? 'false' : 'true'
  );
  await page.waitForTimeout(1000); // the theme's fade-out, before screenshots
}

test('widget styles, themes and a kernel restart', async ({ page }) => {
  test.setTimeout(20 * 60 * 1000);
  page.on('console', message => {
    if (message.text().startsWith('[lenslab]')) console.log(message.text());
  });
  const sidebar = page.locator('#lenslab-sidebar');
  const card = sidebar.locator('.lenslab-model[data-model="model"]');
  const row = (dotted: string) =>
    card.locator(`.lenslab-node[data-path="${dotted}"] > .lenslab-node-row`).first();
  const rowHeights = async (): Promise<number[]> =>
    Promise.all(['model', 'lm_head'].map(async p => (await row(p).boundingBox())!.height));

  await page.goto(`/lab/tree/states.ipynb?token=${token}`);
  await expect(page.locator('#jupyterlab-splash')).toHaveCount(0, { timeout: 120000 });
  await expect(cell(page, 0)).toBeVisible({ timeout: 60000 });
  await expect(page.locator('.jp-StatusBar-TextItem', { hasText: /\| Idle/ }).first()).toBeVisible({
    timeout: 120000
  });
  await page.locator('.jp-SideBar .lm-TabBar-tab[data-id="lenslab-sidebar"]').click();
  await expect(sidebar).toBeVisible();

  let before: number[] = [];
  await test.step('the sidebar lists the model; its tree rows before any widget', async () => {
    await run(page, 0);
    await expect(card).toBeVisible({ timeout: 180000 });
    await card.locator('.lenslab-model-header').click();
    await expect(row('lm_head')).toBeVisible();
    before = await rowHeights();
    expect(Math.min(...before)).toBeGreaterThanOrEqual(14);
  });

  await test.step('every widget shown', async () => {
    for (const index of [TREE, PICKER, LENS, NORMS, 5, PANEL, GRID, WIDE]) await run(page, index);
    for (const index of ANYWIDGETS) {
      await expect(output(page, index).locator('.lenslab-root')).toBeVisible({ timeout: 60000 });
      await expect(output(page, index).locator('.lenslab-banner')).toBeHidden(); // live
    }
    await expect(output(page, 5).locator('.js-plotly-plot')).toBeVisible();
  });

  await test.step('every heatmap has a colour legend with values', async () => {
    const legend = (index: number) => output(page, index).locator('.lenslab-legend');
    for (const index of [LENS, NORMS, GRID]) {
      await expect(legend(index)).toBeVisible();
      await expect(legend(index).locator('.lenslab-legend-ticks span')).toHaveCount(3);
    }
    await expect(legend(LENS)).toContainText('top-1 probability');
    await expect(legend(LENS).locator('.lenslab-legend-ticks span')).toHaveText(['0', '0.5', '1']);
    await expect(legend(NORMS)).toHaveAttribute('data-scale', 'log');
    await expect(legend(NORMS)).toContainText('L2 norm, log scale');
    await expect(legend(GRID)).toHaveAttribute('data-palette', 'diverging');
    await expect(legend(GRID)).toContainText('centred on 0');
    const low = Number(await legend(GRID).getAttribute('data-low'));
    expect(low).toBe(-Number(await legend(GRID).getAttribute('data-high')));
    await expect(legend(GRID).locator('.lenslab-legend-ticks span').nth(1)).toHaveText('0');
  });

  await test.step('a big grid scrolls in its box; its labels stay in view', async () => {
    const wide = output(page, WIDE);
    const canvas = wide.locator('canvas');
    const scroller = wide.locator('.lenslab-scroll');
    await expect(scroller).toBeVisible();
    const [x, y] = [2500, 1000];
    const before = await shade(canvas, x + 2, y + TOP + 40); // a cell, before scrolling
    await scroller.evaluate((el, [x, y]) => el.scrollTo(x, y), [x, y]);
    await expect(scroller).toHaveJSProperty('scrollLeft', x);
    // the row-label band and the column-label band now cover the cells at the scroll offset
    await expect.poll(() => shade(canvas, x + 2, y + TOP + 40)).toBeGreaterThan(700);
    await expect.poll(() => shade(canvas, x + 400, y + 3)).toBeGreaterThan(700);
    expect(before).toBeLessThan(700);
    await shot(wide, 'wide_scrolled');
  });

  await test.step('no widget rule reaches the sidebar', async () => {
    const after = await rowHeights();
    after.forEach((height, i) => expect(Math.abs(height - before[i])).toBeLessThan(0.5));
    // Document-level stylesheets: lenslab rules are the sidebar's own, scoped under it.
    const unscoped = await page.evaluate(() => {
      const found: string[] = [];
      for (const sheet of Array.from(document.styleSheets)) {
        let rules: CSSRuleList;
        try {
          rules = sheet.cssRules;
        } catch {
          continue; // another origin's sheet
        }
        for (const rule of Array.from(rules)) {
          const selector = (rule as CSSStyleRule).selectorText ?? '';
          for (const part of selector.split(',')) {
            if (part.includes('.lenslab-') && !part.trim().startsWith('.lenslab-sidebar')) {
              found.push(part.trim());
            }
          }
        }
      }
      return found;
    });
    expect(unscoped).toEqual([]);
  });

  await test.step("JupyterLab's styles do not reach inside a widget", async () => {
    const chip = output(page, PICKER).locator('.lenslab-chip').first();
    const node = output(page, TREE).locator('.lenslab-node').first();
    const look = (target: Locator) =>
      target.evaluate(el => {
        const style = getComputedStyle(el);
        return `${style.fontSize} ${style.lineHeight} ${style.color}`;
      });
    const [chipBefore, nodeBefore] = [await look(chip), await look(node)];
    await page.evaluate(() => {
      const style = document.createElement('style');
      style.id = 'hostile';
      style.textContent =
        '.jp-OutputArea-output, .jp-OutputArea-output * { font-size: 31px !important;' +
        ' line-height: 50px !important; color: rgb(255, 0, 0) !important; }';
      document.head.append(style);
    });
    expect(await look(chip)).toBe(chipBefore);
    expect(await look(node)).toBe(nodeBefore);
    expect(chipBefore).toContain('12px');
    await page.evaluate(() => document.getElementById('hostile')?.remove());
  });

  for (const name of ['JupyterLab Light', 'JupyterLab Dark']) {
    const suffix = name.includes('Dark') ? 'dark' : 'light';
    await test.step(`screenshots in ${name}`, async () => {
      await theme(page, name);
      // cells follow the theme: no glaring white block on a dark page
      const empty = await cellShade(output(page, GRID).locator('canvas'), 0, 0); // not computed
      const quiet = await cellShade(output(page, NORMS).locator('canvas'), 0, 5); // a low norm
      if (suffix === 'dark') {
        expect(empty).toBeLessThan(250);
        expect(quiet).toBeLessThan(450);
      } else {
        expect(empty).toBeGreaterThan(600);
      }
      await shot(sidebar, `sidebar_${suffix}`);
      await shot(output(page, TREE), `module_tree_${suffix}`);
      await shot(output(page, PICKER), `layer_picker_${suffix}`);
      await shot(output(page, NORMS), `norms_${suffix}`);
      await shot(output(page, LENS), `logit_lens_${suffix}`);
      await shot(output(page, GRID), `patching_grid_${suffix}`);
    });
  }

  await test.step('keyboard: chips, tree rows, the slider; the notebook stays put', async () => {
    const activeCell = () =>
      page.evaluate(() =>
        Array.from(
          document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell')
        ).findIndex(c => c.classList.contains('jp-mod-active'))
      );
    const picker = output(page, PICKER);
    const summary = picker.locator('code.lenslab-code');
    const layers = picker.locator('.lenslab-chips').first().locator('.lenslab-chip');
    await layers.nth(0).focus();
    await page.keyboard.press('Space');
    await expect(summary).toContainText('layers=[0,15]');
    await page.keyboard.press('ArrowRight');
    await expect(layers.nth(1)).toBeFocused();
    await page.keyboard.press('Enter');
    await expect(summary).toContainText('layers=[0,1,15]');
    // tokens as tokens: the leading space is marked, the whole token is on hover
    const position = picker.locator('.lenslab-chips').nth(1).locator('.lenslab-chip').nth(1);
    await expect(position).toHaveText('1:·E');
    await expect(position).toHaveAttribute('title', 'position 1: " E"');

    const tree = output(page, TREE);
    const node = (p: string) => tree.locator(`.lenslab-node[data-path="${p}"]`);
    await node('model').focus();
    await page.keyboard.press('ArrowRight'); // already open: into its first child
    await expect(node('model.model')).toBeFocused();
    await page.keyboard.press('ArrowRight'); // closed: opens it
    await expect(node('model.model.embed_tokens')).toBeVisible();
    await expect(node('model.model')).toBeFocused();
    await page.keyboard.press('Enter');
    await expect(tree.locator('code.lenslab-code')).toHaveText('model.model.output');

    const panel = output(page, PANEL);
    const slider = panel.locator('input[type="range"]');
    await slider.focus();
    const before = await activeCell();
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('ArrowDown');
    await expect(slider).toHaveValue('0.8');
    expect(await activeCell()).toBe(before); // the notebook did not move to another cell
    await expect(panel.locator('.lenslab-root')).toHaveAttribute('data-runs', /^[2-9]$/, {
      timeout: 120000
    });
    await expect(panel.locator('.lenslab-busy')).toHaveCount(0, { timeout: 120000 });
  });

  await test.step('a kernel restart in the middle of a sweep', async () => {
    const grid = output(page, GRID);
    await grid.getByRole('button', { name: 'Run full sweep' }).click();
    await expect(grid.getByText(/sweeping… \d+%/)).toBeVisible({ timeout: 120000 });
    await page.getByRole('button', { name: 'Restart the kernel', exact: true }).first().click();
    await page.locator('.jp-Dialog .jp-mod-accept').click();
    for (const index of ANYWIDGETS) {
      await expect(output(page, index).locator('.lenslab-banner')).toHaveText(RESTARTED, {
        timeout: 60000
      });
    }
    await expect(grid.locator('.lenslab-busy')).toHaveCount(0);
    await expect(grid.getByText('sweep stopped')).toBeVisible();
  });

  await test.step('after the restart, clicks say so instead of spinning', async () => {
    const grid = output(page, GRID);
    await grid.locator('canvas').click();
    await expect(grid.locator('.lenslab-banner')).toHaveClass(/lenslab-flash/);
    await expect(grid.locator('.lenslab-busy')).toHaveCount(0);
    await expect(grid).not.toContainText('patching layer');

    const tree = output(page, TREE);
    const selected = (await tree.locator('code.lenslab-code').textContent()) ?? '';
    await tree.locator('.lenslab-node[data-path="model.model"]').click();
    await expect(tree.locator('.lenslab-banner')).toHaveClass(/lenslab-flash/);
    await expect(tree.locator('code.lenslab-code')).toHaveText(selected);

    const picker = output(page, PICKER);
    const summary = (await picker.locator('code.lenslab-code').textContent()) ?? '';
    await picker.locator('.lenslab-chip').first().click();
    await expect(picker.locator('code.lenslab-code')).toHaveText(summary);

    const panel = output(page, PANEL);
    const slider = panel.locator('input[type="range"]');
    await slider.scrollIntoViewIfNeeded();
    const box = (await slider.boundingBox())!;
    await page.mouse.click(box.x + box.width * 0.8, box.y + box.height / 2);
    await expect(panel.locator('.lenslab-banner')).toHaveClass(/lenslab-flash/);
    await expect(panel.locator('.lenslab-busy')).toHaveCount(0);
    await expect(panel).not.toContainText('waiting…');
    await shot(grid, 'restarted');
  });
});
