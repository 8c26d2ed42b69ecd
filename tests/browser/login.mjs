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
// exits 1. Every wait has a timeout of at most 15 s (starting Chromium: 60 s); the whole script stops itself after 90 s.
// Requests to anything but 127.0.0.1 / localhost / [::1] are aborted and reported in
// "blocked_requests" with the page that made them (the test IdP's login page, which is
// oidc-provider's development form, asks for a Google font; orgsso's pages must ask for nothing).
// "page_errors" lists uncaught exceptions and console errors, with the page they happened on.
// The launch, the loopback-only routing, those records and the failure handling are harness.mjs's,
// shared with admin.mjs.

import { mkdir } from 'node:fs/promises';
import {
  DESKTOP, MOBILE, blocked, cleanup, elapsed, fatal, landOnOrgsso, launchBrowser, pageErrors, readConfig, run, shoot, until,
} from './harness.mjs';

const SCRIPT_TIMEOUT_MS = 90_000;

let step = 'reading the configuration';
let page; // the browser's page (its URL goes into the failure line)

async function main() {
  const { cfg, base, baseOrigin } = readConfig('LOGIN_CONFIG', ['base', 'email', 'account', 'screenshots']);
  const password = cfg.password ?? 'any-password';
  const executablePath = cfg.chromium ?? '/usr/bin/chromium';
  await mkdir(cfg.screenshots, { recursive: true });
  const shots = [];

  step = `launching ${executablePath}`;
  const browser = await launchBrowser(executablePath);
  const { context } = browser;
  page = browser.page;
  const browserVersion = context.browser()?.version() ?? null;

  step = `opening ${base}/login`;
  await page.setViewportSize(MOBILE);
  const resp = await page.goto(`${base}/login`, { waitUntil: 'load' });
  if (!resp || resp.status() !== 200) throw fatal(`GET /login answered ${resp ? resp.status() : 'nothing'}`);
  const email = page.locator('input#email[name="email"]');
  const cont = page.getByRole('button', { name: 'Continue' });
  await email.waitFor({ state: 'visible' });
  await cont.waitFor({ state: 'visible' });
  shots.push(await shoot(page, cfg.screenshots, 'login-mobile.png'));
  await page.setViewportSize(DESKTOP);
  await email.waitFor({ state: 'visible' });
  shots.push(await shoot(page, cfg.screenshots, 'login-desktop.png'));

  step = 'typing the email';
  await email.click();
  await email.pressSequentially(cfg.email, { delay: 10 });
  if ((await email.inputValue()) !== cfg.email) throw fatal(`the email field holds ${JSON.stringify(await email.inputValue())}`);
  shots.push(await shoot(page, cfg.screenshots, 'login.png'));

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
  const consented = await landOnOrgsso(page, { loginPage, baseOrigin, what: `orgsso's signed-in page ${base}/` });
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
  shots.push(await shoot(page, cfg.screenshots, 'signed-in.png'));

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

await run(main, { script: 'login.mjs', timeoutMs: SCRIPT_TIMEOUT_MS, step: () => step, url: () => (page ? page.url() : '') });
