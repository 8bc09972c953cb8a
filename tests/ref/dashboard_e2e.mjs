// dashboard_e2e.mjs BASE_URL OUTDIR [NPM_DIR] [MODEL] [EMBED_MODEL]
//
// Drives the dashboard of a running `orion serve` in headless Chromium
// (Debian's /usr/bin/chromium, through npm's playwright-core) and checks:
//  - the page loads with no console error and no page error;
//  - it lists MODEL (default "stories") as the default model, not loaded;
//  - Load (the button in its row) shows a progress bar, load_progress events
//    arrive, and the row ends "loaded" with resident bytes;
//  - the memory chart gains points while we watch;
//  - embedding requests (EMBED_MODEL, default "hash") show up in the
//    requests table and the cache numbers;
//  - Unload removes the model and the event log records the reason
//    ("explicit");
//  - every button has an accessible name;
// and saves OUTDIR/dashboard-desktop.png and OUTDIR/dashboard-phone.png.
// Prints one JSON object with what it saw; exits 1 on the first failed
// check (with the reason on stderr), 2 when Chromium or playwright-core is
// missing.
import { createRequire } from 'module';
import { existsSync } from 'fs';
import { dirname, resolve } from 'path';
import { fileURLToPath } from 'url';

const here = dirname(fileURLToPath(import.meta.url));
const [base, outDir, npmArg, modelArg, embedArg] = process.argv.slice(2);
if (!base || !outDir) {
  console.error('usage: node dashboard_e2e.mjs BASE_URL OUTDIR [NPM_DIR] [MODEL] [EMBED_MODEL]');
  process.exit(2);
}
const npmDir = npmArg || resolve(here, '../../third_party/npm/node_modules');
const MODEL = modelArg || 'stories';
const EMBED = embedArg || 'hash';
const CHROMIUM = process.env.ORION_CHROMIUM || '/usr/bin/chromium';

let chromium;
try {
  ({ chromium } = createRequire(resolve(npmDir) + '/')('playwright-core'));
} catch (e) {
  console.error(`playwright-core is missing from ${npmDir}: run scripts/setup.sh (npm ci) (${e.message})`);
  process.exit(2);
}
if (!existsSync(CHROMIUM)) {
  console.error(`${CHROMIUM} is missing: run scripts/setup.sh (Debian package chromium)`);
  process.exit(2);
}

const out = { console_errors: [], checks: [] };
let browser;

function check(ok, what) {
  out.checks.push(what);
  if (!ok) throw new Error('check failed: ' + what);
}

function watch(page, tag) {
  page.on('console', (m) => { if (m.type() === 'error') out.console_errors.push(`${tag}: ${m.text()}`); });
  page.on('pageerror', (e) => out.console_errors.push(`${tag}: page error: ${e.message}`));
}

const row = (page, id) => page.locator(`#models tr[data-model="${id}"]`);

async function embedSome(n) {
  for (let i = 0; i < n; i++) {
    const r = await fetch(base + '/v1/embeddings', {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: EMBED, input: [`text ${i % 3}`, 'the same text'] }),
    });
    if (!r.ok) throw new Error(`POST /v1/embeddings: ${r.status} ${await r.text()}`);
  }
}

try {
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--headless=new'] });

  // ---- desktop --------------------------------------------------------------------
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  watch(page, 'desktop');
  const resp = await page.goto(base + '/', { waitUntil: 'load' });
  check(resp.status() === 200, 'GET / is 200');
  check((await page.title()).includes('orion'), 'the page has its title');
  await page.waitForSelector(`#models tr[data-model="${MODEL}"]`, { timeout: 10000 });
  const r = row(page, MODEL);
  check((await r.locator('.tag').innerText()).includes('default'), `${MODEL} is marked as the default model`);
  check((await r.getAttribute('data-state')) === 'not loaded', `${MODEL} starts not loaded (lazy)`);
  await page.waitForFunction(() => document.getElementById('conn').textContent === 'live', null, { timeout: 10000 });
  check(true, 'the page is live (events open, polls answered)');
  await page.waitForFunction(() => document.getElementById('f-budget').textContent !== '–');
  out.budget = await page.locator('#f-budget').innerText();
  out.tier = await page.locator('#f-tier').innerText();
  const pointsBefore = Number(await page.locator('#memchart').getAttribute('data-points'));

  // Load from the page: a progress bar, progress events, then loaded
  const loadBtn = page.getByRole('button', { name: `Load ${MODEL}` });
  await loadBtn.click();
  await page.waitForFunction((id) => {
    const s = window.orionDashboard;
    const tr = document.querySelector(`#models tr[data-model="${id}"]`);
    return s.progressSeen[id] >= 1 && tr && tr.dataset.state === 'loaded';
  }, MODEL, { timeout: 30000 });
  out.progress_seen = await page.evaluate((id) => window.orionDashboard.progressSeen[id], MODEL);
  check(out.progress_seen >= 1, 'load_progress reached 100%');
  const logText = await page.locator('#events').innerText();
  check(/loading at/.test(logText) && /loaded at/.test(logText), 'the event log has load_started and loaded');
  await page.waitForFunction((id) => {
    const tr = document.querySelector(`#models tr[data-model="${id}"]`);
    return tr && /[KMG]iB|\d B/.test(tr.children[5].textContent);
  }, MODEL, { timeout: 10000 });
  out.resident = await r.locator('td').nth(5).innerText();
  out.quant = await r.locator('td').nth(2).innerText();

  // traffic for the requests table and the cache
  await embedSome(6);
  await page.waitForSelector('#requests tr[data-endpoint="/v1/embeddings"]', { timeout: 10000 });
  await page.waitForFunction(() => document.getElementById('c-hitrate').textContent.includes('%'), null,
                             { timeout: 10000 });
  out.hit_rate = await page.locator('#c-hitrate').innerText();

  // the chart moves
  await page.waitForFunction((n) => Number(document.getElementById('memchart').dataset.points) >= n + 2,
                             pointsBefore, { timeout: 15000 });
  out.points = Number(await page.locator('#memchart').getAttribute('data-points'));
  check(out.points > pointsBefore, 'the memory chart gained points');
  check(await page.locator('#memchart path.series-rss').count() === 1, 'the chart draws the process RSS');
  check(await page.locator(`#memchart path[data-model="${MODEL}"]`).count() === 1, `the chart draws ${MODEL}`);

  // every control is named
  const unnamed = await page.evaluate(() => [...document.querySelectorAll('button, input, progress')]
    .filter((e) => !(e.getAttribute('aria-label') || e.textContent.trim() || (e.labels && e.labels.length)))
    .map((e) => e.outerHTML));
  check(unnamed.length === 0, 'every control has an accessible name ' + unnamed.join(' '));

  await page.screenshot({ path: `${outDir}/dashboard-desktop.png`, fullPage: true });

  // Unload: the row goes back, the log says why
  await page.getByRole('button', { name: `Unload ${MODEL}` }).click();
  await page.waitForSelector(`#events li[data-event="unloaded"][data-model="${MODEL}"]`, { timeout: 10000 });
  out.unload_reason = await page.locator(`#events li[data-event="unloaded"][data-model="${MODEL}"]`).first()
    .getAttribute('data-reason');
  check(out.unload_reason === 'explicit', 'the event log records the unload reason "explicit"');
  await page.waitForFunction((id) => {
    const tr = document.querySelector(`#models tr[data-model="${id}"]`);
    return tr && tr.dataset.state === 'not loaded';
  }, MODEL, { timeout: 10000 });
  check(true, `${MODEL} is no longer loaded`);
  await ctx.close();

  // ---- phone ------------------------------------------------------------------------
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2,
                                           isMobile: true, hasTouch: true });
  const pp = await phone.newPage();
  watch(pp, 'phone');
  await pp.goto(base + '/', { waitUntil: 'load' });
  await pp.waitForSelector(`#models tr[data-model="${MODEL}"]`, { timeout: 10000 });
  await pp.waitForFunction(() => Number(document.getElementById('memchart').dataset.points) >= 2, null,
                           { timeout: 10000 });
  const overflow = await pp.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  out.phone_overflow_px = overflow;
  check(overflow <= 1, 'no horizontal scrolling on a phone');
  await pp.screenshot({ path: `${outDir}/dashboard-phone.png`, fullPage: true });
  await phone.close();

  check(out.console_errors.length === 0, 'no console errors: ' + out.console_errors.join(' | '));
  console.log(JSON.stringify(out));
  await browser.close();
  process.exit(0);
} catch (e) {
  console.error(e.message);
  console.log(JSON.stringify(out));
  if (browser) await browser.close().catch(() => {});
  process.exit(1);
}
