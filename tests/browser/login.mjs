// A colleague signs in to orgsso through "Login with SSO" in a real browser.
//
// Playwright (playwright-core only: it downloads no browser) drives Debian's /usr/bin/chromium,
// headless, with a fresh profile in a temp dir. Normally run by tests/api/browser.rs; by hand:
//
//   node login.mjs '{"base":"http://127.0.0.1:PORT","email":"alice@acme.test",
//                    "account":"alice","screenshots":"/abs/dir"}'
//
// (or the same JSON in the LOGIN_CONFIG environment variable). Optional keys: "password"
// (default "any-password": the test IdP accepts any), "chromium" (default /usr/bin/chromium).
//
// Steps: open {base}/login (screenshots login-mobile.png at 375x812 and login-desktop.png at
// 1280x800), type the email (login.png), click Continue, fill the IdP's login form at
// /interaction/<uid> (login=<account>, password), submit, confirm consent if the IdP asks, land
// on orgsso's signed-in page {base}/ (signed-in.png).
//
// On success it prints one JSON line on stdout:
//   {"ok":true,"url":"http://127.0.0.1:PORT/","heading":"You are signed in","name":"Alice",
//    "email":"alice@acme.test","org":"Org acme","role":"developer","role_shown":"Developer",...}
// ("role" is the text in the page, "role_shown" what a person sees: the CSS capitalises it.)
// On any failure it prints {"ok":false,"step":...,"error":...} on stdout, a readable message on
// stderr, saves a screenshot of the page it was on to the temp dir (path in the message) and
// exits 1. Every wait has a timeout of at most 15 s; the whole script stops itself after 90 s.
// Requests to anything but 127.0.0.1 / localhost / [::1] are aborted and reported in
// "blocked_requests" with the page that made them (the test IdP's login page, which is
// oidc-provider's development form, asks for a Google font; orgsso's pages must ask for nothing).
// "page_errors" lists uncaught exceptions and console errors, with the page they happened on.

import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { chromium } from 'playwright-core';

const STEP_TIMEOUT_MS = 15_000;
const SCRIPT_TIMEOUT_MS = 90_000;
const MOBILE = { width: 375, height: 812 };
const DESKTOP = { width: 1280, height: 800 };
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
let step = 'reading the configuration';
let context; // the browser (a persistent context over a fresh profile)
let page;
let userDataDir;
let finished = false;
const blocked = []; // non-loopback requests that were aborted: {url, page}
const pageErrors = []; // uncaught exceptions and console errors in the pages: {page, text}

function elapsed() {
  return Date.now() - started;
}

async function cleanup() {
  if (context) {
    const c = context;
    context = undefined;
    await Promise.race([c.close().catch(() => {}), new Promise((r) => { setTimeout(r, 5_000); })]);
  }
  if (userDataDir) {
    await rm(userDataDir, { recursive: true, force: true }).catch(() => {});
    userDataDir = undefined;
  }
}

async function fail(message) {
  if (finished) return;
  finished = true;
  let shot = '';
  if (page) {
    const path = join(tmpdir(), `orgsso-browser-failure-${process.pid}.png`);
    const ok = await Promise.race([
      page.screenshot({ path, fullPage: true, timeout: 5_000 }).then(() => true, () => false),
      new Promise((r) => { setTimeout(() => r(false), 6_000); }),
    ]);
    if (ok) shot = `\n  screenshot of the page: ${path}`;
  }
  let url = '';
  try { url = page ? page.url() : ''; } catch { /* page gone */ }
  const extra = [
    url && `\n  page URL: ${url}`,
    shot,
    pageErrors.length ? `\n  page errors:\n    ${pageErrors.map((e) => `${e.page}: ${e.text}`).join('\n    ')}` : '',
    blocked.length ? `\n  blocked non-loopback requests:\n    ${blocked.map((b) => `${b.url} (from ${b.page})`).join('\n    ')}` : '',
  ].join('');
  message = String(message).replace(/\x1b\[[0-9;]*m/g, ''); // Playwright's call logs are coloured
  process.stderr.write(`login.mjs: FAILED while ${step} (after ${elapsed()} ms): ${message}${extra}\n`);
  process.stdout.write(`${JSON.stringify({ ok: false, step, error: message, url, ms: elapsed() })}\n`);
  await cleanup();
  process.exit(1);
}

// The whole run has a hard deadline, whatever hangs.
const deadline = setTimeout(() => {
  fail(`the whole script took more than ${SCRIPT_TIMEOUT_MS / 1000} s`).finally(() => process.exit(1));
  // If even fail() hangs, leave anyway.
  setTimeout(() => process.exit(1), 10_000).unref();
}, SCRIPT_TIMEOUT_MS);

process.on('unhandledRejection', (err) => { fail(`unhandled rejection: ${err?.stack ?? err}`); });

// Polls `probe` (which returns a truthy value when done) until it does or `timeoutMs` passes.
// Probes may throw while a page navigates; that counts as "not yet".
async function until(what, probe, timeoutMs = STEP_TIMEOUT_MS) {
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

function fatal(message) {
  const err = new Error(message);
  err.orgssoFatal = true;
  return err;
}

function isLoopback(url) {
  try {
    const { protocol, hostname } = new URL(url);
    if (protocol === 'data:' || protocol === 'blob:' || protocol === 'about:') return true;
    return ['127.0.0.1', 'localhost', '[::1]'].includes(hostname) || /^127\.\d+\.\d+\.\d+$/.test(hostname);
  } catch {
    return false;
  }
}

async function shoot(dir, name) {
  const path = join(dir, name);
  await page.screenshot({ path, fullPage: true, timeout: STEP_TIMEOUT_MS, animations: 'disabled' });
  return path;
}

async function main() {
  const raw = process.argv[2] ?? process.env.LOGIN_CONFIG;
  if (!raw) throw fatal('no configuration: pass a JSON object as the first argument or in LOGIN_CONFIG');
  let cfg;
  try {
    cfg = JSON.parse(raw);
  } catch (err) {
    throw fatal(`the configuration is not JSON: ${err.message}`);
  }
  for (const key of ['base', 'email', 'account', 'screenshots']) {
    if (typeof cfg?.[key] !== 'string' || cfg[key] === '') throw fatal(`configuration key "${key}" must be a non-empty string`);
  }
  if (!isAbsolute(cfg.screenshots)) throw fatal('"screenshots" must be an absolute path');
  const base = cfg.base.replace(/\/+$/, '');
  const baseOrigin = new URL(base).origin;
  if (!isLoopback(base)) throw fatal(`"base" must be a loopback URL, got ${base}`);
  const password = cfg.password ?? 'any-password';
  const executablePath = cfg.chromium ?? '/usr/bin/chromium';
  await mkdir(cfg.screenshots, { recursive: true });
  const shots = [];

  step = `launching ${executablePath}`;
  userDataDir = await mkdtemp(join(tmpdir(), 'orgsso-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: DESKTOP,
    timeout: STEP_TIMEOUT_MS,
    locale: 'en-GB',
    timezoneId: 'UTC',
    colorScheme: 'light',
    reducedMotion: 'reduce',
  });
  const browserVersion = context.browser()?.version() ?? null;
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);
  // Only loopback traffic: anything else is aborted and reported.
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (isLoopback(url)) return route.continue();
    let from = '';
    try { from = route.request().frame().url(); } catch { /* not from a frame */ }
    blocked.push({ url, page: from });
    return route.abort('blockedbyclient');
  });
  page = context.pages()[0] ?? await context.newPage();
  page.on('pageerror', (err) => pageErrors.push({ page: page.url(), text: `pageerror: ${err.message}` }));
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const where = msg.location()?.url;
    pageErrors.push({ page: page.url(), text: `console.error: ${msg.text()}${where ? ` (${where})` : ''}` });
  });

  step = `opening ${base}/login`;
  await page.setViewportSize(MOBILE);
  const resp = await page.goto(`${base}/login`, { waitUntil: 'load' });
  if (!resp || resp.status() !== 200) throw fatal(`GET /login answered ${resp ? resp.status() : 'nothing'}`);
  const email = page.locator('input#email[name="email"]');
  const cont = page.getByRole('button', { name: 'Continue' });
  await email.waitFor({ state: 'visible' });
  await cont.waitFor({ state: 'visible' });
  shots.push(await shoot(cfg.screenshots, 'login-mobile.png'));
  await page.setViewportSize(DESKTOP);
  await email.waitFor({ state: 'visible' });
  shots.push(await shoot(cfg.screenshots, 'login-desktop.png'));

  step = 'typing the email';
  await email.click();
  await email.pressSequentially(cfg.email, { delay: 10 });
  if ((await email.inputValue()) !== cfg.email) throw fatal(`the email field holds ${JSON.stringify(await email.inputValue())}`);
  shots.push(await shoot(cfg.screenshots, 'login.png'));

  step = 'clicking Continue and waiting for the IdP login form';
  await cont.click();
  const idpUrl = await until('the IdP login form (/interaction/<uid> with a "login" field)', async () => {
    const u = new URL(page.url());
    if (u.origin === baseOrigin) {
      const err = page.locator('.error');
      if (await err.count()) throw fatal(`orgsso answered with an error: ${(await err.first().innerText()).trim()}`);
      return false;
    }
    if (!u.pathname.startsWith('/interaction/')) return false;
    return (await page.locator('input[name="login"]').isVisible()) ? page.url() : false;
  });

  step = `signing in at the IdP as ${cfg.account}`;
  await page.locator('input[name="login"]').fill(cfg.account);
  await page.locator('input[name="password"]').fill(password);
  const loginPage = page.url();
  await page.locator('form button[type="submit"], form input[type="submit"]').first().click();

  step = 'waiting to land back on orgsso (consenting if asked)';
  let consented = false;
  await until(`orgsso's signed-in page ${base}/`, async () => {
    const u = new URL(page.url());
    if (u.origin === baseOrigin) {
      if (u.pathname === '/' && await page.locator('h1').count()) return true;
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
  await page.waitForLoadState('load');

  step = 'reading the signed-in page';
  const heading = (await page.locator('h1').first().innerText()).trim();
  if (heading !== 'You are signed in') {
    const body = (await page.locator('body').innerText()).trim().slice(0, 500);
    throw fatal(`landed on ${page.url()} with heading ${JSON.stringify(heading)}: ${body}`);
  }
  const fields = await page.locator('dl').first().evaluate((dl) => {
    const out = {};
    for (const dt of dl.querySelectorAll('dt')) {
      const dd = dt.nextElementSibling;
      if (dd && dd.tagName === 'DD') out[dt.textContent.trim()] = { text: dd.textContent.trim(), shown: dd.innerText.trim() };
    }
    return out;
  });
  for (const key of ['Name', 'Email', 'Organisation', 'Role']) {
    if (!fields[key]) throw fatal(`the signed-in page has no "${key}" entry (has: ${Object.keys(fields).join(', ')})`);
  }
  const signOut = await page.getByRole('button', { name: 'Sign out' }).isVisible();
  shots.push(await shoot(cfg.screenshots, 'signed-in.png'));

  step = 'closing the browser';
  const cookies = (await context.cookies(base)).map((c) => c.name);
  const result = {
    ok: true,
    url: page.url(),
    title: await page.title(),
    heading,
    name: fields.Name.text,
    email: fields.Email.text,
    org: fields.Organisation.text,
    role: fields.Role.text,
    role_shown: fields.Role.shown,
    sign_out_button: signOut,
    idp_login_url: idpUrl,
    consent_shown: consented,
    cookies,
    blocked_requests: blocked,
    page_errors: pageErrors,
    browser: browserVersion,
    screenshots: shots,
    ms: elapsed(),
  };
  await cleanup();
  return result;
}

try {
  const result = await main();
  finished = true;
  clearTimeout(deadline);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
} catch (err) {
  await fail(err?.orgssoFatal ? err.message : String(err?.stack ?? err));
}
