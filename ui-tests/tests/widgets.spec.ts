// The five lenslab widgets in a real JupyterLab with a real kernel and SmolLM2.
// Runs when tests/widgets/test_browser.py starts the server with ui-tests/notebooks/widgets.ipynb
// (it sets LENSLAB_WIDGETS=1); skipped in other suites' runs.
import { expect, test } from '@playwright/test';
import * as path from 'path';
import { artifacts, cell, center, output, run, shot } from './notebook';

const token = process.env.LAB_TOKEN ?? '';

test.skip(!process.env.LENSLAB_WIDGETS, 'started by tests/widgets/test_browser.py');
test.use({ viewport: { width: 1400, height: 1500 } }); // tall enough for whole-widget screenshots

// Heatmap canvas geometry (js/widgets/shared/heatmap.ts): margins and cell sizes.
const LEFT = 64;
const TOP = 84;
const CELL_H = 16;
const CELL_W = 30; // 56 when cells carry text (the logit lens)

test('the five widgets, end to end', async ({ page }) => {
  test.setTimeout(25 * 60 * 1000); // SmolLM2 on 2 shared CPU cores: load, generate, sweep
  const started = Date.now();
  page.on('console', (message) => {
    if (message.text().startsWith('[lenslab]')) console.log(message.text());
  });
  const mark = (what: string): void => console.log(`[lenslab] ${what} after ${(Date.now() - started) / 1000}s`);
  await page.goto(`/lab/tree/widgets.ipynb?token=${token}`);
  await expect(page.locator('#jupyterlab-splash')).toHaveCount(0, { timeout: 120000 });
  await expect(cell(page, 0)).toBeVisible({ timeout: 60000 });
  await expect(page.locator('.jp-StatusBar-TextItem', { hasText: /\| Idle/ }).first()).toBeVisible({
    timeout: 120000,
  });

  const news = page.locator('.jp-Notification-Toast-Close, .Toastify__close-button');
  await news.first().click({ timeout: 10000 }).catch(() => undefined); // the "Jupyter news?" toast

  await test.step('load SmolLM2', async () => {
    await run(page, 0);
    await expect(cell(page, 0).locator('.jp-InputPrompt')).toHaveText(/\[1\]/, {
      timeout: 240000,
    });
    mark('model loaded');
  });

  await test.step('ModuleTree: expand, click a module, the kernel sees it', async () => {
    await run(page, 1);
    const tree = output(page, 1);
    const node = (p: string) => tree.locator(`.lenslab-node[data-path="${p}"]`);
    await expect(node('model.model')).toBeVisible({ timeout: 60000 });
    await node('model.model').click();
    await node('model.model.layers').click();
    await node('model.model.layers[5]').click();
    await expect(node('model.model.layers[5].mlp')).toContainText('LlamaMLP');
    await expect(node('model.model.layers[5].mlp')).toContainText('2.65M params');
    await node('model.model.layers[5].mlp').click();
    await expect(tree.locator('code.lenslab-code')).toHaveText('model.model.layers[5].mlp.output');
    await expect(node('model.model.layers[5].mlp')).toHaveClass(/lenslab-on/);
    await shot(tree, 'module_tree');
    await page.context().grantPermissions(['clipboard-read', 'clipboard-write']);
    await tree.getByRole('button', { name: 'Copy' }).click();
    await expect(tree.getByRole('button', { name: 'Copied' })).toBeVisible();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(
      'model.model.layers[5].mlp.output'
    );
    mark('module tree');
    await tree.locator('input').fill('down_proj');
    await expect(tree.locator('.lenslab-node')).toHaveCount(30);
    await tree.locator('input').fill('');
  });

  await test.step('LayerPicker: layers, component, tokens', async () => {
    await run(page, 2);
    const picker = output(page, 2);
    const chips = picker.locator('.lenslab-chips');
    await expect(chips.first()).toBeVisible({ timeout: 60000 });
    await chips.nth(0).locator('.lenslab-chip', { hasText: /^15$/ }).click(); // off
    await chips.nth(0).locator('.lenslab-chip', { hasText: /^20$/ }).click();
    await chips.nth(0).locator('.lenslab-chip', { hasText: /^24$/ }).click({ modifiers: ['Shift'] });
    await picker.locator('input[data-component="mlp"]').check();
    await chips.nth(1).locator('.lenslab-chip').nth(3).click();
    await expect(picker.locator('code.lenslab-code')).toHaveText(
      'layers=[20,21,22,23,24], component="mlp", positions=[3,9]'
    );
    await shot(picker, 'layer_picker');
    mark('layer picker');
  });

  await test.step('live logit lens: rows fill in place, top-k on hover', async () => {
    await run(page, 3);
    const lens = output(page, 3);
    const canvas = lens.locator('canvas');
    await expect(canvas).toBeVisible({ timeout: 120000 });
    await expect(cell(page, 3).locator('.jp-InputPrompt')).toHaveText(/\[\d+\]/, {
      timeout: 120000,
    });
    const view = canvas.locator('xpath=..');
    await expect.poll(async () => Number(await view.getAttribute('data-cell-paints'))).toBeGreaterThan(0);
    expect(Number(await view.getAttribute('data-full-paints'))).toBeLessThanOrEqual(3);
    await center(canvas);
    await canvas.hover({ position: { x: LEFT + 9 * 56 + 20, y: TOP + 29 * CELL_H + 8 } });
    await expect(page.locator('.lenslab-tip:visible')).toContainText("' Paris'");
    await canvas.hover({ position: { x: LEFT + 9 * 56 + 20, y: TOP + 27 * CELL_H + 8 } });
    await expect(page.locator('.lenslab-tip:visible')).toContainText('layer 27');
    const box = (await lens.boundingBox())!; // the tooltip hangs below the output area
    await page.screenshot({
      path: path.join(artifacts, 'logit_lens.png'),
      clip: { x: box.x, y: box.y, width: box.width, height: box.height + 90 },
    });
    mark('logit lens');
  });

  await test.step('per-step plot during generation (plotly FigureWidget)', async () => {
    await run(page, 4);
    const plot = output(page, 4);
    await expect(plot.locator('.js-plotly-plot')).toBeVisible({ timeout: 120000 });
    await expect(plot.locator('.scatterlayer .trace')).toHaveCount(2, { timeout: 120000 });
    await expect(cell(page, 4).locator('.jp-InputPrompt')).toHaveText(/\[\d+\]/, {
      timeout: 120000,
    });
    await expect(plot.locator('.scatterlayer .trace').first().locator('.point')).toHaveCount(10);
    await shot(plot, 'generation_plot');
    mark('generation plot');
  });

  await test.step('SteeringPanel: move the slider, the steered text changes', async () => {
    await run(page, 5);
    const panel = output(page, 5);
    const steered = panel.locator('[data-role="steered"]');
    await expect(steered).toContainText('I think that you are', { timeout: 120000 });
    const before = await steered.innerText();
    const slider = panel.locator('input[type="range"]');
    const box = (await slider.boundingBox())!;
    await page.mouse.click(box.x + box.width * 0.3, box.y + box.height / 2); // about -2
    await expect(panel.locator('.lenslab-busy')).toBeVisible();
    await expect.poll(() => steered.innerText(), { timeout: 120000 }).not.toBe(before);
    await expect(panel.locator('.lenslab-busy')).toHaveCount(0, { timeout: 120000 });
    await shot(panel, 'steering_panel');
    mark('steering panel');
  });

  await test.step('PatchingGrid: click a cell, then run the full sweep', async () => {
    await run(page, 6);
    const grid = output(page, 6);
    const canvas = grid.locator('canvas');
    await expect(canvas).toBeVisible({ timeout: 120000 });
    await center(canvas);
    await canvas.click({ position: { x: LEFT + 13 * CELL_W + 15, y: TOP + 20 * CELL_H + 8 } });
    await expect(grid.locator('.lenslab-detail')).toContainText('layer 20, position 13', {
      timeout: 120000,
    });
    await expect(grid.locator('td[data-list="clean"]').first()).toContainText('" Mary"');
    await expect(grid.locator('td[data-list="corrupted"]').first()).toContainText('" John"');
    await expect(grid.locator('td[data-list="patched"]').first()).toContainText('" John"');
    await grid.getByRole('button', { name: 'Run full sweep' }).click();
    await expect(grid.getByText('sweep done')).toBeVisible({ timeout: 420000 });
    await shot(grid, 'patching_grid');
    mark('patching grid');
  });

  await test.step('the kernel holds what the browser chose', async () => {
    await run(page, 7);
    const printed = output(page, 7);
    await expect(printed).toContainText('selected: model.model.layers[5].mlp.output', {
      timeout: 60000,
    });
    await expect(printed).toContainText("layers=(20, 21, 22, 23, 24), component='mlp'");
    await expect(printed).toContainText('patched top-1:');
    await expect(printed).not.toContainText('coefficient: 1.0');
  });

  await test.step('the dark theme', async () => {
    await cell(page, 7).locator('.jp-InputPrompt').click();
    await page.keyboard.press('Control+Shift+C');
    await page.locator('#command-palette input').fill('Use Theme: JupyterLab Dark');
    await page.keyboard.press('Enter');
    await expect(page.locator('body')).toHaveAttribute('data-jp-theme-light', 'false');
    await expect(page.locator('#jupyterlab-splash')).toHaveCount(0, { timeout: 60000 });
    const background = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    await expect.poll(async () => (await background()).match(/\d+/g)!.map(Number).reduce((a, b) => a + b)).toBeLessThan(300);
    await page.waitForTimeout(1000); // the theme's fade-out
    await shot(output(page, 1), 'module_tree_dark');
    await shot(output(page, 6), 'patching_grid_dark');
  });

  await test.step('saved widget state: re-opened after the kernel is gone, they still show', async () => {
    // The server was started with the widget manager's saveState setting on.
    await cell(page, 7).locator('.jp-InputPrompt').click();
    await page.keyboard.press('Control+s');
    await expect(page.locator('.jp-Document.jp-mod-dirty, .jp-mod-dirty .jp-Document')).toHaveCount(0);
    const auth = { headers: { Authorization: `token ${token}` } };
    const sessions = await (await page.request.get('/api/sessions', auth)).json();
    for (const session of sessions as { id: string }[]) {
      await page.request.delete(`/api/sessions/${session.id}`, auth);
    }
    await page.reload();
    await expect(page.locator('#jupyterlab-splash')).toHaveCount(0, { timeout: 120000 });
    const tree = output(page, 1);
    await expect(tree.locator('code.lenslab-code')).toHaveText('model.model.layers[5].mlp.output', {
      timeout: 120000,
    });
    const grid = output(page, 6);
    await expect(grid.locator('.lenslab-detail')).toContainText('layer 20, position 13');
    await expect(output(page, 5).locator('[data-role="steered"]')).toContainText('I think that you are');
    await shot(grid, 'reopened_patching_grid');
  });
});
