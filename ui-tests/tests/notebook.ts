// What the widget specs do to a notebook page: find a cell and its output, run a cell, and
// save a screenshot of part of the page under the test run's artifacts folder.
import { Locator, Page, expect } from '@playwright/test';
import * as path from 'path';

export const artifacts = process.env.LENSLAB_ARTIFACTS ?? path.join(__dirname, '..', 'artifacts');

export function cell(page: Page, index: number): Locator {
  return page.locator('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell').nth(index);
}

export function output(page: Page, index: number): Locator {
  return cell(page, index).locator('.jp-OutputArea-output');
}

/** Runs cell `index`; with `timeout`, waits until its prompt shows it ran (`[n]`). */
export async function run(page: Page, index: number, timeout?: number): Promise<void> {
  await cell(page, index).locator('.cm-content').click();
  await page.keyboard.press('Shift+Enter');
  if (timeout !== undefined) {
    await expect(cell(page, index).locator('.jp-InputPrompt')).toHaveText(/\[\d+\]/, { timeout });
  }
}

export async function center(target: Locator): Promise<void> {
  await target.evaluate(el => el.scrollIntoView({ block: 'center' }));
}

export async function shot(target: Locator, name: string): Promise<void> {
  await center(target);
  await target.screenshot({ path: path.join(artifacts, `${name}.png`) });
}
