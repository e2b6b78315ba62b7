// End to end: the lenslab sidebar in a real JupyterLab with a real kernel and SmolLM2.
// The notebooks (lenslab.ipynb, other.ipynb) are written by tests/lab/test_sidebar_e2e.py.
import { Locator, Page, expect, test } from '@playwright/test';
import * as path from 'path';

const token = process.env.LAB_TOKEN ?? '';
const artifacts = path.join(
  process.env.LENSLAB_ARTIFACTS ?? path.join(__dirname, '..', 'artifacts'),
  'sidebar'
);

async function shot(target: Page | Locator, name: string): Promise<void> {
  await target.screenshot({ path: path.join(artifacts, `${name}.png`) });
}

function cell(page: Page, index: number): Locator {
  return page.locator('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell').nth(index);
}

async function runCell(page: Page, index: number): Promise<void> {
  await cell(page, index).locator('.cm-content').click();
  await page.keyboard.press('Shift+Enter');
}

async function cellText(page: Page, index: number): Promise<string> {
  return (await cell(page, index).locator('.cm-content').innerText()).trim();
}

async function openNotebook(page: Page, name: string): Promise<void> {
  await page.goto(`/lab/tree/${name}?token=${token}`);
  await expect(page.locator('#jupyterlab-splash')).toHaveCount(0, { timeout: 120000 });
  await expect(cell(page, 0)).toBeVisible({ timeout: 60000 });
}

test('the lenslab sidebar, end to end', async ({ page }) => {
  const sidebar = page.locator('#lenslab-sidebar');
  const card = sidebar.locator('.lenslab-model[data-model="model"]');
  const node = (dotted: string) => card.locator(`.lenslab-node[data-path="${dotted}"]`).first();
  const toggle = (dotted: string) =>
    node(dotted).locator(':scope > .lenslab-node-row .lenslab-node-toggle').click();

  await test.step('the sidebar waits for lenslab in the kernel', async () => {
    await openNotebook(page, 'lenslab.ipynb');
    await page.locator('.jp-SideBar .lm-TabBar-tab[data-id="lenslab-sidebar"]').click();
    await expect(sidebar).toBeVisible();
    // a wider left panel, for the screenshots
    const handle = page.locator('#jp-main-split-panel > .lm-SplitPanel-handle').first();
    const box = await handle.boundingBox();
    if (box !== null) {
      await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
      await page.mouse.down();
      await page.mouse.move(520, box.y + box.height / 2, { steps: 5 });
      await page.mouse.up();
    }
    await expect(sidebar).toHaveAttribute('data-state', 'absent', { timeout: 60000 });
  });

  await test.step('importing lenslab and loading SmolLM2 lists the model', async () => {
    await runCell(page, 0);
    await expect(card).toBeVisible({ timeout: 180000 });
    await expect(card.locator('.lenslab-model-meta')).toContainText(
      'LanguageModel · LlamaForCausalLM · 134.5M params'
    );
    await expect(sidebar.locator('.lenslab-status')).toHaveText('connected');
  });

  await test.step('the module tree expands lazily, with scanned shapes', async () => {
    await card.locator('.lenslab-model-header').click();
    await expect(node('model')).toBeVisible();
    await expect(node('lm_head').locator('.lenslab-node-shape').first()).toHaveText(
      '[1, 2, 49152]'
    );
    await toggle('model');
    await toggle('model.layers');
    await expect(node('model.layers.5').locator('.lenslab-node-shape').first()).toHaveText(
      '[1, 2, 576]'
    );
    await toggle('model.layers.5');
    await expect(node('model.layers.5.mlp')).toBeVisible();
    await shot(sidebar, 'tree');
  });

  await test.step('clicking a module inserts its path at the cursor', async () => {
    await cell(page, 1).locator('.cm-content').click();
    await node('model.layers.5.mlp').locator(':scope > .lenslab-node-row .lenslab-node-label').click();
    await expect.poll(() => cellText(page, 1)).toBe('model.model.layers[5].mlp.output');
  });

  await test.step('the command (palette and Ctrl+Alt+L) inserts it again', async () => {
    await cell(page, 1).locator('.cm-content').click();
    await page.keyboard.press('End');
    await page.keyboard.type(' + ');
    await page.keyboard.press('Control+Alt+L');
    await expect
      .poll(() => cellText(page, 1))
      .toBe('model.model.layers[5].mlp.output + model.model.layers[5].mlp.output');
    await page.keyboard.press('Control+Shift+C');
    const palette = page.locator('#command-palette');
    await palette.locator('input').fill('lenslab: Insert');
    await expect(
      palette.locator('.lm-CommandPalette-item', { hasText: "Insert the selected module's path" })
    ).toBeVisible();
    await page.keyboard.press('Escape');
  });

  await test.step('the filter finds modules by name', async () => {
    await card.locator('.lenslab-filter').fill('down_proj');
    await expect(card.locator('.lenslab-found .lenslab-node')).toHaveCount(30);
    await card.locator('.lenslab-filter').fill('');
    await expect(card.locator('.lenslab-found')).toBeHidden();
  });

  await test.step('a trace updates the saved values', async () => {
    await runCell(page, 2);
    const hidden = sidebar.locator('.lenslab-saved-row[data-name="hidden"]');
    await expect(hidden).toBeVisible({ timeout: 180000 });
    await expect(hidden.locator('.lenslab-saved-shape')).toContainText(', 576] float32');
    await expect(hidden.locator('.lenslab-heatmap rect').first()).toBeAttached();
    const logits = sidebar.locator('.lenslab-saved-row[data-name="logits"]');
    await expect(logits.locator('.lenslab-saved-shape')).toHaveText('[1, 49152] float32');
    await expect(logits.locator('.lenslab-sparkline path')).toBeAttached();
    await expect(logits.locator('.lenslab-saved-stats')).toHaveText(/^-?[\d.e+-]+ \/ /);
    await shot(sidebar, 'saved');
    await shot(page, 'lab-light');
  });

  await test.step('the sidebar answers while a long cell runs', async () => {
    await runCell(page, 3); // time.sleep(30)
    const prompt = cell(page, 3).locator('.jp-InputPrompt');
    await expect(prompt).toContainText('[*]');
    await toggle('model.layers.7');
    await expect(node('model.layers.7.self_attn')).toBeVisible({ timeout: 10000 });
    await expect(prompt).toContainText('[*]'); // still running: answered over a subshell
  });

  await test.step('a kernel restart is followed by a recovery', async () => {
    await page.getByRole('button', { name: 'Restart the kernel', exact: true }).first().click();
    await page.locator('.jp-Dialog .jp-mod-accept').click();
    await expect(card).toHaveCount(0, { timeout: 60000 });
    await expect(sidebar).toHaveAttribute('data-state', 'absent', { timeout: 60000 });
    await runCell(page, 0);
    await expect(card).toBeVisible({ timeout: 180000 });
    await expect(sidebar.locator('.lenslab-status')).toHaveText('connected');
  });

  await test.step('switching notebooks switches kernels', async () => {
    await page.keyboard.press('Control+Shift+C');
    await page.locator('#command-palette input').fill('Open from Path');
    await page.keyboard.press('Enter');
    await page.locator('.jp-Dialog input').fill('other.ipynb');
    await page.locator('.jp-Dialog .jp-mod-accept').click();
    await expect(cell(page, 0)).toContainText('net = ');
    if (!(await sidebar.isVisible())) {
      // opening from a path showed the file browser in the sidebar's place
      await page.locator('.jp-SideBar .lm-TabBar-tab[data-id="lenslab-sidebar"]').click();
    }
    await expect(sidebar).toBeVisible();
    await runCell(page, 0);
    await expect(sidebar.locator('.lenslab-model[data-model="net"]')).toBeVisible({
      timeout: 60000
    });
    await expect(card).toHaveCount(0);
    await page.locator('.lm-DockPanel-tabBar .lm-TabBar-tab', { hasText: 'lenslab.ipynb' }).click();
    await expect(card).toBeVisible({ timeout: 60000 });
  });

  await test.step('the sidebar follows the dark theme', async () => {
    const background = () =>
      sidebar.evaluate(element => getComputedStyle(element).backgroundColor);
    const light = await background();
    await page.keyboard.press('Control+Shift+C');
    await page.locator('#command-palette input').fill('Use Theme: JupyterLab Dark');
    await page.keyboard.press('Enter');
    await expect.poll(background, { timeout: 30000 }).not.toBe(light);
    const [r, g, b] = (await background()).match(/\d+/g)!.map(Number);
    expect(r + g + b).toBeLessThan(3 * 100);
    await shot(sidebar, 'dark');
  });
});
