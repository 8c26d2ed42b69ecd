// The harness the real-browser scripts (login.mjs, admin.mjs) share: their JSON configuration,
// Debian's Chromium launched headless over a fresh profile (loopback traffic only, with the
// aborted requests and the page errors recorded), polling with a timeout, and the run itself:
// one JSON line on stdout, {"ok":false,"step":...,"error":...,"url":...,"ms":...} with a readable
// message on stderr and screenshots of the pages on any failure or at the script's deadline.
// One run per process: the state kept here is that run's.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { chromium } from 'playwright-core';

export const STEP_TIMEOUT_MS = 15_000;
// Starting Chromium is the machine's work, not the page's: on a loaded 2-core CI machine it has
// taken more than 15 s (two scripts starting browsers while the other tests run), though it
// takes about 1 s when the machine is idle. Each script's own deadline still bounds the run.
export const LAUNCH_TIMEOUT_MS = 60_000;
export const MOBILE = { width: 375, height: 812 };
export const DESKTOP = { width: 1280, height: 800 };
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

const started = Date.now();
const browsers = []; // launched by launchBrowser: {name, context, page, userDataDir}
let finished = false;
// Non-loopback requests that were aborted: {url, page}, {browser, url, page} for a named browser.
export const blocked = [];
// Uncaught exceptions and console errors in the pages: {page, text}, {browser, page, text} for a
// named browser.
export const pageErrors = [];

export function elapsed() {
  return Date.now() - started;
}

// Polls `probe` (which returns a truthy value when done) until it does or `timeoutMs` passes.
// Probes may throw while a page navigates; that counts as "not yet".
export async function until(what, probe, timeoutMs = STEP_TIMEOUT_MS) {
  const end = Date.now() + timeoutMs;
  let lastError;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (err) {
      if (err && err.orgssoFatal) throw err;
      lastError = err;
    }
    if (Date.now() > end) {
      const why = lastError ? ` (last error: ${String(lastError.message ?? lastError).split('\n')[0]})` : '';
      throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}${why}`);
    }
    await new Promise((r) => { setTimeout(r, 100); });
  }
}

// An error that ends the run with just `message` (no stack), even inside an until() probe.
export function fatal(message) {
  const err = new Error(message);
  err.orgssoFatal = true;
  return err;
}

export function isLoopback(url) {
  try {
    const { protocol, hostname } = new URL(url);
    if (protocol === 'data:' || protocol === 'blob:' || protocol === 'about:') return true;
    return ['127.0.0.1', 'localhost', '[::1]'].includes(hostname) || /^127\.\d+\.\d+\.\d+$/.test(hostname);
  } catch {
    return false;
  }
}

// The JSON configuration: the first argument, else the environment variable `envName`. Each of
// `keys` must be a non-empty string, "screenshots" an absolute path, "base" a loopback URL.
// Returns {cfg, base (without trailing slashes), baseOrigin}.
export function readConfig(envName, keys) {
  const raw = process.argv[2] ?? process.env[envName];
  if (!raw) throw fatal(`no configuration: pass a JSON object as the first argument or in ${envName}`);
  let cfg;
  try {
    cfg = JSON.parse(raw);
  } catch (err) {
    throw fatal(`the configuration is not JSON: ${err.message}`);
  }
  for (const key of keys) {
    if (typeof cfg?.[key] !== 'string' || cfg[key] === '') throw fatal(`configuration key "${key}" must be a non-empty string`);
  }
  if (!isAbsolute(cfg.screenshots)) throw fatal('"screenshots" must be an absolute path');
  const base = cfg.base.replace(/\/+$/, '');
  const baseOrigin = new URL(base).origin;
  if (!isLoopback(base)) throw fatal(`"base" must be a loopback URL, got ${base}`);
  return { cfg, base, baseOrigin };
}

// Launches `executablePath` headless: a persistent context over a fresh profile in a temp dir,
// 1280x800, LAUNCH_TIMEOUT_MS to start, default timeouts of STEP_TIMEOUT_MS. Requests to anything but loopback are aborted
// and recorded in `blocked`; uncaught exceptions and console errors in its page are recorded in
// `pageErrors`, unless `onConsoleError(entry, msg)` takes a console error (returns true). A
// `name` tags those records ({browser: name, ...}) and the failure report's lines. Returns
// {name, context, page, userDataDir}; cleanup() closes it and removes the profile.
export async function launchBrowser(executablePath, { name, onConsoleError } = {}) {
  const tag = name === undefined ? {} : { browser: name };
  const browser = { name, context: undefined, page: undefined, userDataDir: undefined };
  browsers.push(browser);
  browser.userDataDir = await mkdtemp(join(tmpdir(), name === undefined ? 'orgsso-chromium-' : `orgsso-chromium-${name}-`));
  const context = await chromium.launchPersistentContext(browser.userDataDir, {
    executablePath,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: DESKTOP,
    timeout: LAUNCH_TIMEOUT_MS,
    locale: 'en-GB',
    timezoneId: 'UTC',
    colorScheme: 'light',
    reducedMotion: 'reduce',
  });
  browser.context = context;
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);
  // Only loopback traffic: anything else is aborted and reported.
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (isLoopback(url)) return route.continue();
    let from = '';
    try { from = route.request().frame().url(); } catch { /* not from a frame */ }
    blocked.push({ ...tag, url, page: from });
    return route.abort('blockedbyclient');
  });
  const page = context.pages()[0] ?? await context.newPage();
  browser.page = page;
  page.on('pageerror', (err) => pageErrors.push({ ...tag, page: page.url(), text: `pageerror: ${err.message}` }));
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const where = msg.location()?.url;
    const entry = { ...tag, page: page.url(), text: `console.error: ${msg.text()}${where ? ` (${where})` : ''}` };
    if (onConsoleError && onConsoleError(entry, msg)) return;
    pageErrors.push(entry);
  });
  return browser;
}

// Closes every launched browser and removes its profile.
export async function cleanup() {
  for (const b of browsers.splice(0)) {
    if (b.context) await Promise.race([b.context.close().catch(() => {}), new Promise((r) => { setTimeout(r, 5_000); })]);
    if (b.userDataDir) await rm(b.userDataDir, { recursive: true, force: true }).catch(() => {});
  }
}

// A full-page screenshot of `page` as `dir`/`name`; returns its path.
export async function shoot(page, dir, name) {
  const path = join(dir, name);
  await page.screenshot({ path, fullPage: true, timeout: STEP_TIMEOUT_MS, animations: 'disabled' });
  return path;
}

// After the test IdP's login form at `loginPage` was submitted in `page`: waits until the page
// lands on orgsso's "/" (`baseOrigin`) with an h1, confirming the IdP's consent form once if it
// asks. Fails at once when the IdP refuses (unknown account, its error page) and, with
// `orgssoErrors`, when an orgsso page shows an .error. Returns whether the consent form was shown.
export async function landOnOrgsso(page, { loginPage, baseOrigin, what, orgssoErrors = false }) {
  let consented = false;
  await until(what, async () => {
    const u = new URL(page.url());
    if (u.origin === baseOrigin) {
      if (u.pathname === '/' && await page.locator('h1').count()) return true;
      if (orgssoErrors) {
        const err = page.locator('.error');
        if (await err.count()) throw fatal(`orgsso answered with an error: ${(await err.first().innerText()).replace(/\s+/g, ' ').trim()}`);
      }
      return false;
    }
    const body = await page.locator('body').innerText({ timeout: 1_000 });
    if (/unknown account|oops! something went wrong/i.test(body)) {
      throw fatal(`the IdP refused: ${body.trim().slice(0, 500)}`);
    }
    if (page.url() === loginPage) return false; // still submitting the login form
    const consent = page.locator('form:has(input[name="prompt"][value="consent"]) button[type="submit"]');
    if (!consented && await consent.count()) {
      consented = true;
      await consent.first().click();
    }
    return false;
  });
  return consented;
}

// Runs the script: `main()` returns the result (after cleanup()), printed as one JSON line, exit
// 0. Any failure (an error, an unhandled rejection, `timeoutMs` passing) prints the failure line
// on stdout and the message as "`script`: FAILED while `step()` ..." on stderr, with each
// browser's page URL, a screenshot of it in the temp dir, the page errors and the blocked
// requests; then cleanup() and exit 1. `url()` gives the failure line's "url".
export async function run(main, { script, timeoutMs, step, url }) {
  async function fail(message) {
    if (finished) return;
    finished = true;
    const shots = [];
    const urls = [];
    for (const b of browsers) {
      if (!b.page) continue;
      const whose = b.name === undefined ? 'page' : `${b.name}'s page`;
      const path = join(tmpdir(), `orgsso-browser-failure-${process.pid}${b.name === undefined ? '' : `-${b.name}`}.png`);
      const ok = await Promise.race([
        b.page.screenshot({ path, fullPage: true, timeout: 5_000 }).then(() => true, () => false),
        new Promise((r) => { setTimeout(() => r(false), 6_000); }),
      ]);
      if (ok) shots.push(`\n  screenshot of the ${whose}: ${path}`);
      try { urls.push(`\n  ${whose} URL: ${b.page.url()}`); } catch { /* page gone */ }
    }
    const extra = [
      urls.join(''),
      shots.join(''),
      pageErrors.length ? `\n  page errors:\n    ${pageErrors.map((e) => `${e.page}: ${e.text}`).join('\n    ')}` : '',
      blocked.length ? `\n  blocked non-loopback requests:\n    ${blocked.map((b) => `${b.url} (from ${b.page})`).join('\n    ')}` : '',
    ].join('');
    message = String(message).replace(/\x1b\[[0-9;]*m/g, ''); // Playwright's call logs are coloured
    let where = '';
    try { where = url() ?? ''; } catch { /* page gone */ }
    process.stderr.write(`${script}: FAILED while ${step()} (after ${elapsed()} ms): ${message}${extra}\n`);
    process.stdout.write(`${JSON.stringify({ ok: false, step: step(), error: message, url: where, ms: elapsed() })}\n`);
    await cleanup();
    process.exit(1);
  }

  // The whole run has a hard deadline, whatever hangs.
  const deadline = setTimeout(() => {
    fail(`the whole script took more than ${timeoutMs / 1000} s`).finally(() => process.exit(1));
    // If even fail() hangs, leave anyway.
    setTimeout(() => process.exit(1), 10_000).unref();
  }, timeoutMs);

  process.on('unhandledRejection', (err) => { fail(`unhandled rejection: ${err?.stack ?? err}`); });

  try {
    const result = await main();
    finished = true;
    clearTimeout(deadline);
    process.stdout.write(`${JSON.stringify(result)}\n`);
    process.exit(0);
  } catch (err) {
    await fail(err?.orgssoFatal ? err.message : String(err?.stack ?? err));
  }
}
