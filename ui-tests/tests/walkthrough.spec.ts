// A researcher's walk through the widgets in a real browser, in JupyterLab and in Notebook 7 (LENSLAB_APP):
// generation_plot's token axis and separate metric axes (5), code and UI agreeing on the
// steering coefficient (8), a cancellable sweep with progress, time left and a refused click
// (6), the sidebar's left tab, filter, insertion in command mode, and values kept apart by
// origin with hover on saved heatmaps (11), data out of widgets (9). Screenshots in both themes.
// Started by tests/widgets/test_browser.py (it writes walkthrough.ipynb and sets LENSLAB_WIDGETS=1).
import { Locator, Page, expect, test } from '@playwright/test';
import * as path from 'path';
import { artifacts, cell, output, run as runCell, shot } from './notebook';

const token = process.env.LAB_TOKEN ?? '';
const app = process.env.LENSLAB_APP ?? 'lab'; // "lab" or "notebook"

test.skip(!process.env.LENSLAB_WIDGETS, 'started by tests/widgets/test_browser.py');
test.use({ viewport: { width: 1500, height: 1300 } });

// cells of walkthrough.ipynb (tests/widgets/test_browser.py: WALKTHROUGH_CELLS)
const LOAD = 0;
const STEPS = 1;
const PANEL = 2;
const FROM_CODE = 3;
const GRID = 4;
const TRACE = 5;
const NORMS = 6;
const SAVE = 7;
const SCRATCH = 8;

const run = (page: Page, index: number) => runCell(page, index, 300000);

async function palette(page: Page, command: string): Promise<void> {
  await page.keyboard.press('Control+Shift+C');
  const input = page.locator('.lm-CommandPalette-input:visible').first();
  await input.fill(command);
  await page.locator('.lm-CommandPalette-item:visible', { hasText: command }).first().click();
}

async function theme(page: Page, name: string): Promise<void> {
  await palette(page, `Use Theme: ${name}`);
  await expect(page.locator('body')).toHaveAttribute(
    'data-jp-theme-light',
    name.includes('Dark') ? 'false' : 'true'
  );
  await page.waitForTimeout(1000); // the theme's fade-out, before screenshots
}

test(`the widget walkthrough in ${app}`, async ({ page }) => {
  test.setTimeout(30 * 60 * 1000); // SmolLM2 on 2 shared CPU cores
  page.on('console', message => {
    if (message.text().startsWith('[lenslab]')) console.log(message.text());
  });
  const url = app === 'lab' ? '/lab/tree/walkthrough.ipynb' : '/notebooks/walkthrough.ipynb';
  await page.goto(`${url}?token=${token}`);
  await expect(cell(page, LOAD)).toBeVisible({ timeout: 180000 });
  await page.waitForTimeout(3000); // the kernel connects
  const news = page.locator('.jp-Notification-Toast-Close, .Toastify__close-button');
  await news.first().click({ timeout: 5000 }).catch(() => undefined);

  const sidebar = page.locator('#lenslab-sidebar');
  await test.step('11: the sidebar is a left-area tab', async () => {
    await palette(page, 'lenslab: Show the sidebar');
    await expect(sidebar).toBeVisible({ timeout: 30000 });
    if (app === 'lab') {
      await expect(page.locator('.jp-SideBar .lm-TabBar-tab[data-id="lenslab-sidebar"]')).toBeVisible();
    } else {
      await expect(page.locator('#jp-left-stack #lenslab-sidebar, .jp-SidePanel #lenslab-sidebar, #lenslab-sidebar')).toBeVisible();
    }
    await run(page, LOAD);
    await expect(sidebar.locator('.lenslab-model[data-model="model"]')).toBeVisible({
      timeout: 180000
    });
  });

  await test.step('5: generation_plot names each step by its token, one axis per metric', async () => {
    await run(page, STEPS);
    const plot = output(page, STEPS);
    await expect(plot.locator('.js-plotly-plot')).toBeVisible({ timeout: 120000 });
    // two y axes (one per metric), the shared step axis (xaxis2, under the lower panel)
    await expect(plot.locator('.ytitle, .y2title')).toHaveText(['top-1 probability', 'entropy (nats)']);
    await expect(plot.locator('.x2tick text').first()).toContainText(/^0: '/, { timeout: 60000 });
    await expect(plot.locator('.x2tick text')).toHaveCount(3);
    await shot(plot, `${app}_generation_plot_light`);
  });

  await test.step('8: a coefficient from code widens the slider; the header follows the text', async () => {
    await run(page, PANEL);
    const panel = output(page, PANEL);
    const header = panel.locator('b[data-coefficient]');
    await expect(header).toHaveAttribute('data-coefficient', '1', { timeout: 180000 });
    await run(page, FROM_CODE);
    await expect(output(page, FROM_CODE)).toContainText('-5.0 50.0 50.0');
    const slider = panel.locator('input[type="range"]');
    await expect(slider).toHaveAttribute('max', '50');
    await expect(slider).toHaveValue('50');
    await expect(header).toHaveText(/steered \(×50\.0, layers 8\)/);
    await shot(panel, `${app}_steering_panel_light`);
  });

  await test.step('6: the sweep shows progress and time left, refuses a click, cancels', async () => {
    await run(page, GRID);
    const grid = output(page, GRID);
    await expect(grid.locator('canvas')).toBeVisible({ timeout: 120000 });
    await grid.getByRole('button', { name: 'Run full sweep' }).click();
    const status = grid.locator('[data-role="status"]');
    await expect(status).toHaveText(/sweeping… \d+% · about \d+ (s|min) left/, { timeout: 180000 });
    await expect(grid.locator('[data-role="cancel"]')).toBeVisible();
    const canvas = grid.locator('canvas');
    const box = (await canvas.boundingBox())!;
    await page.mouse.click(box.x + 64 + 30 * 13 + 15, box.y + 84 + 16 * 20 + 8);
    await expect(grid.locator('[data-role="note"]')).toContainText('refused: the sweep is running');
    await shot(grid, `${app}_sweep_running_light`);
    await grid.locator('[data-role="cancel"]').click();
    await expect(status).toHaveText(/sweep cancelled at \d+%/, { timeout: 180000 });
    await expect(grid.locator('[data-role="cancel"]')).toBeHidden();
    await expect(grid.locator('.lenslab-busy')).toHaveCount(0);
  });

  await test.step('11: values saved by widgets are kept apart; heatmaps hover; filter; insert', async () => {
    await run(page, TRACE);
    const saved = sidebar.locator('.lenslab-saved');
    await expect(saved.locator('> table .lenslab-saved-row[data-name="hidden"]')).toBeVisible({
      timeout: 120000
    });
    const title = saved.locator('.lenslab-saved-row[data-name="hidden"] .lenslab-heatmap rect title').first();
    await expect(title).toHaveText(/^hidden\[0, 0(:\d+)?, 0:\d+\]: mean -?[\d.e+-]+$/);
    const card = sidebar.locator('.lenslab-model[data-model="model"]');
    await card.locator('.lenslab-model-header').click();
    const filter = card.locator('.lenslab-filter');
    await filter.fill('model.layers.5');
    const found = card.locator('.lenslab-node[data-path="model.layers.5"]').first();
    await expect(found).toBeVisible({ timeout: 60000 });
    await filter.fill('layers[5].mlp');
    await expect(card.locator('.lenslab-node[data-path="model.layers.5.mlp"]').first()).toBeVisible();
    await shot(sidebar, `${app}_sidebar_light`);
    await cell(page, TRACE).evaluate(el => el.scrollIntoView({ block: 'start' }));
    await page.screenshot({ path: path.join(artifacts, `${app}_page_light.png`) }); // the README's
    // command mode: the path goes on a line of its own, the cell's text stays as it was
    await cell(page, SCRATCH).locator('.cm-content').click();
    await page.keyboard.press('Escape');
    await card.locator('.lenslab-node[data-path="model.layers.5.mlp"] .lenslab-node-row').first().click();
    await expect(cell(page, SCRATCH).locator('.cm-content')).toHaveText(
      /^x = 1\s*model\.model\.layers\[5\]\.mlp\.output$/
    );
  });

  await test.step('9: data out of a widget; a heatmap saves SVG and PNG', async () => {
    await run(page, NORMS);
    await expect(output(page, NORMS).locator('canvas')).toBeVisible({ timeout: 120000 });
    await expect(output(page, NORMS).locator('[data-role="save-png"]')).toBeVisible();
    await run(page, SAVE);
    await expect(output(page, SAVE)).toContainText('norms.svg norms.png (30, ');
    await shot(output(page, NORMS), `${app}_norms_light`);
  });

  await test.step('the same widgets in the dark theme', async () => {
    await theme(page, 'JupyterLab Dark');
    await shot(output(page, STEPS), `${app}_generation_plot_dark`);
    await shot(output(page, PANEL), `${app}_steering_panel_dark`);
    await shot(output(page, GRID), `${app}_patching_grid_dark`);
    await shot(output(page, NORMS), `${app}_norms_dark`);
    await shot(sidebar, `${app}_sidebar_dark`);
    await theme(page, 'JupyterLab Light');
  });
});
