// Browser tests of the lenslab sidebar against a running JupyterLab (started by
// tests/lab/test_sidebar_e2e.py, which passes LAB_URL and LAB_TOKEN).
import { defineConfig } from '@playwright/test';

export default defineConfig({
  testDir: './tests',
  outputDir: './test-results',
  timeout: 8 * 60 * 1000,
  expect: { timeout: 30 * 1000 },
  retries: 0,
  workers: 1,
  reporter: [['list']],
  use: {
    baseURL: process.env.LAB_URL ?? 'http://127.0.0.1:8888',
    viewport: { width: 1400, height: 900 },
    screenshot: 'only-on-failure',
    trace: 'off',
    actionTimeout: 60 * 1000,
    navigationTimeout: 120 * 1000,
    launchOptions: {
      executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run'
      ]
    }
  }
});
