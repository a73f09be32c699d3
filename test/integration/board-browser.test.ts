/**
 * Bull Board as a person sees it: the board page, opened in headless Chromium (Debian's
 * `chromium`, driven by puppeteer-core) with an admin key as the Basic password, draws a progress
 * bar for an ingest job — it draws one only when the job's progress is a number (README,
 * "Progress"; SECURITY.md for the board's guards). `.ci/run` installs Chromium where it is missing.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import puppeteer, { type Browser } from 'puppeteer-core';
import { startApi, type RunningApi } from '../../api/server.ts';
import { loadConfig } from '../../shared/config.ts';
import { csvText, testEnv, type TestEnv } from '../helpers/env.ts';
import { call, completedJob } from '../helpers/http.ts';
import { silentLog, startTestWorkers } from '../helpers/jobs.ts';

const ADMIN = 'board-browser-admin-key-7f3e1a';
const CHROMIUM = '/usr/bin/chromium';

let env: TestEnv;
let api: RunningApi;
let browser: Browser;
let jobId: string;

describe('Bull Board in a browser', { timeout: 120_000 }, () => {
  before(async () => {
    await fs.access(CHROMIUM); // a missing browser is a set-up failure, not a skip
    env = await testEnv();
    const workers = await startTestWorkers(env, ['ingest'], 1);
    env.defer(() => workers.close());
    api = await startApi(loadConfig({ ...process.env, LAKEHOUSE_API_KEYS: `${ADMIN}:admin`, LAKEHOUSE_HOST: '127.0.0.1', PORT: '0' }), silentLog);
    env.defer(() => api.close());
    const rows = [['id', 'city'], ...Array.from({ length: 500 }, (_, i) => [i, `city ${i % 7}`])];
    const upload = await call(api.url, '/datasets/towns/upload?mode=replace&filename=towns.csv', {
      method: 'POST', key: ADMIN, body: csvText(rows), headers: { 'content-type': 'text/csv' },
    });
    assert.equal(upload.status, 202, upload.text);
    jobId = upload.json.id;
    await completedJob((p) => call(api.url, p, { key: ADMIN }), upload.headers.get('location')!);
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    env.defer(() => browser.close());
  });

  after(() => env?.cleanup());

  it("draws a progress bar at 100 for a completed ingest job", async () => {
    const page = await browser.newPage();
    await page.authenticate({ username: 'me', password: ADMIN });
    const response = await page.goto(`${api.url}/admin/queues/queue/ingest?status=completed`, { waitUntil: 'networkidle0' });
    assert.equal(response?.status(), 200);
    await page.waitForSelector('[role="progressbar"]', { timeout: 30_000 });
    const bars = await page.$$eval('[role="progressbar"]', (els) => els.map((el) => el.getAttribute('aria-valuenow')));
    assert.ok(bars.includes('100'), `progress bars on the page: ${JSON.stringify(bars)}`);
    const text = await page.evaluate(() => document.body.innerText);
    assert.ok(text.includes(`#${jobId}`) || text.includes(jobId), 'the page shows the job');
    assert.ok(text.includes('Lakehouse jobs'), 'the board names itself');
  });

  it('a browser with no key, or a wrong one, is challenged and never sees the board', async () => {
    for (const password of [undefined, 'not-the-admin-key-000000']) {
      // a fresh context: the browser caches the admin's Basic credentials of the test above
      const context = await browser.createBrowserContext();
      const page = await context.newPage();
      if (password) await page.authenticate({ username: 'me', password });
      // headless Chromium meets a Basic challenge it cannot answer by failing the navigation, and
      // one whose credentials were refused by showing the 401 answer
      const outcome = await page.goto(`${api.url}/admin/queues`, { waitUntil: 'domcontentloaded' }).then((r) => r?.status(), (err: Error) => err.message);
      assert.ok(outcome === 401 || /ERR_INVALID_AUTH_CREDENTIALS/.test(String(outcome)), `${password ?? 'no key'}: ${outcome}`);
      const text = await page.evaluate(() => document.body?.innerText ?? '');
      assert.ok(!text.includes('Lakehouse jobs'), 'the board is not shown');
      await context.close();
    }
  });
});
