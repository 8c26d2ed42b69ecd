// A customer's IT admin sets up single sign-on through a setup link in a real browser.
//
// Playwright (playwright-core only) drives Debian's /usr/bin/chromium, headless, over a fresh
// profile. Normally run by tests/api/browser.rs; by hand:
//
//   node setup.mjs '{"base":"http://127.0.0.1:PORT","setup_url":"…/setup/<token>",
//                    "expired_url":"…","revoked_url":"…","other_slug":"beta",
//                    "issuer":"http://127.0.0.1:IDP","client_id":"…","client_secret":"…",
//                    "account":"ada","screenshots":"/abs/dir"}'
//
// (or the same JSON in SETUP_CONFIG). Steps: the expired and the revoked link show their 410
// pages; the link opens on its start page (setup-start.png: a GET binds nothing, so link
// scanners cannot take it), Start is pressed and step 1 shows (setup-choose-idp.png), Keycloak is chosen, the URIs to
// register are shown with copy buttons (setup-register.png), an issuer that is not there is
// refused in the form with the secret cleared (setup-credentials-error.png), the right one is
// saved, a rule is saved, the test sign-in goes through the IdP's login form and comes back with
// the claims and the role (setup-test-result.png), activation shows the login URL
// (setup-done.png); then the bound browser tries another org's console and API pages.
// Prints one JSON line: {"ok":true,...}; on failure {"ok":false,"step":...} and exit 1 (see
// harness.mjs). Every wait has a timeout of at most 15 s (starting Chromium: 60 s); the script stops itself after 120 s.

import { mkdir } from 'node:fs/promises';
import {
  DESKTOP, blocked, cleanup, elapsed, fatal, launchBrowser, pageErrors, readConfig, run, shoot, until,
} from './harness.mjs';

const SCRIPT_TIMEOUT_MS = 120_000;

let step = 'reading the configuration';
let page;

// The page's first `.error` text, or null.
async function errorText() {
  const err = page.locator('.error');
  return (await err.count()) ? (await err.first().innerText()).replace(/\s+/g, ' ').trim() : null;
}

// Goes to `url`; returns {status, heading, text}.
async function visit(url) {
  const resp = await page.goto(url, { waitUntil: 'load' });
  return {
    status: resp ? resp.status() : 0,
    heading: (await page.locator('h1').first().innerText()).trim(),
    text: (await page.locator('main').innerText()).replace(/\s+/g, ' ').trim(),
  };
}

// Waits for orgsso's page at a path starting with `prefix` whose `selector` is there.
async function landOn(baseOrigin, prefix, selector, what) {
  let consented = false;
  await until(what, async () => {
    const u = new URL(page.url());
    if (u.origin === baseOrigin) {
      return u.pathname.startsWith(prefix) && (await page.locator(selector).count()) > 0;
    }
    const body = await page.locator('body').innerText({ timeout: 1_000 });
    if (/unknown account|oops! something went wrong/i.test(body)) throw fatal(`the IdP refused: ${body.trim().slice(0, 500)}`);
    const consent = page.locator('form:has(input[name="prompt"][value="consent"]) button[type="submit"]');
    if (!consented && await consent.count()) {
      consented = true;
      await consent.first().click();
    }
    return false;
  });
  await page.waitForLoadState('load');
  return consented;
}

async function main() {
  const { cfg, base, baseOrigin } = readConfig('SETUP_CONFIG', [
    'base', 'setup_url', 'expired_url', 'revoked_url', 'other_slug', 'issuer', 'client_id', 'client_secret', 'account', 'screenshots',
  ]);
  const password = cfg.password ?? 'any-password';
  const executablePath = cfg.chromium ?? '/usr/bin/chromium';
  await mkdir(cfg.screenshots, { recursive: true });
  const shots = [];
  const result = { ok: true };

  step = `launching ${executablePath}`;
  // The refusals this script provokes answer 4xx on purpose (410 links, the 422 form, another
  // org's 401): Chromium logs each as a console error; they are kept apart from real errors.
  const expected = [];
  const browser = await launchBrowser(executablePath, {
    onConsoleError: (entry, msg) => {
      if (msg.text().includes('net::ERR_BLOCKED_BY_CLIENT')) return true;
      if (!/Failed to load resource: the server responded with a status of (401|410|422)\b/.test(msg.text())) return false;
      expected.push(entry);
      return true;
    },
  });
  page = browser.page;
  await page.setViewportSize(DESKTOP);
  await browser.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: baseOrigin });

  step = 'opening the expired link';
  result.expired = await visit(cfg.expired_url);
  step = 'opening the revoked link';
  result.revoked = await visit(cfg.revoked_url);
  shots.push(await shoot(page, cfg.screenshots, 'setup-revoked.png'));

  step = 'opening the setup link (the start page)';
  const landing = await visit(cfg.setup_url);
  result.landing = { status: landing.status, heading: landing.heading, text: landing.text };
  shots.push(await shoot(page, cfg.screenshots, 'setup-start.png'));

  step = 'pressing Start (step 1)';
  await page.locator('#setup-start-submit').click();
  await landOn(baseOrigin, '/setup/', '#choose-idp', 'step 1 (choose the IdP)');
  result.first = { status: 200, heading: (await page.locator('h1').first().innerText()).trim() };
  result.presets = await page.locator('#choose-idp input[name="preset"]').evaluateAll((els) => els.map((e) => e.value));
  shots.push(await shoot(page, cfg.screenshots, 'setup-choose-idp.png'));

  step = 'choosing Keycloak';
  await page.locator('#choose-idp input[value="keycloak"]').check();
  await page.locator('#choose-idp-submit').click();
  await landOn(baseOrigin, '/setup/', '#step-2', 'step 2 (what to register)');
  result.redirect_uri = (await page.locator('#redirect-uri').innerText()).trim();
  result.backchannel_logout_uri = (await page.locator('#backchannel-logout-uri').innerText()).trim();
  await page.locator('button[data-copy="redirect-uri"]').click();
  result.clipboard = await until('the copied redirect URI', async () => {
    const t = await page.evaluate(() => navigator.clipboard.readText());
    return t || false;
  });
  shots.push(await shoot(page, cfg.screenshots, 'setup-register.png'));

  step = 'entering an issuer that is not there';
  await page.locator('#step-2-next').click();
  await landOn(baseOrigin, '/setup/', '#credentials', 'step 3 (credentials)');
  result.groups_claim_from_preset = await page.locator('#groups_claim').inputValue();
  await page.locator('#issuer').fill('http://127.0.0.1:9/realms/acme');
  await page.locator('#client_id').fill(cfg.client_id);
  await page.locator('#client_secret').fill(cfg.client_secret);
  await page.locator('#groups_claim').fill('groups');
  await page.locator('#scopes').fill('openid email profile groups');
  await page.locator('#credentials-submit').click();
  await landOn(baseOrigin, '/setup/', '#setup-error', 'the credentials error');
  result.bad_issuer_error = await errorText();
  result.bad_issuer_kept = await page.locator('#client_id').inputValue();
  result.bad_issuer_secret_cleared = (await page.locator('#client_secret').inputValue()) === '';
  shots.push(await shoot(page, cfg.screenshots, 'setup-credentials-error.png'));

  step = 'entering the right issuer';
  await page.locator('#issuer').fill(cfg.issuer);
  await page.locator('#client_secret').fill(cfg.client_secret);
  await page.locator('#credentials-submit').click();
  await landOn(baseOrigin, '/setup/', '#rules', 'step 4 (rules)');

  step = 'saving a rule';
  const row = page.locator('#rule-rows tr.rule').first();
  await row.locator('input[name="claim"]').fill('groups');
  await row.locator('select[name="op"]').selectOption('contains');
  await row.locator('input[name="value"]').fill('engineering');
  await row.locator('select[name="role"]').selectOption('admin');
  await page.locator('#rules-save').click();
  await landOn(baseOrigin, '/setup/', '#test-sign-in', 'step 5 (test sign-in)');

  step = 'testing the sign-in at the IdP';
  await page.locator('#test-sign-in-submit').click();
  await until('the IdP login form', async () => new URL(page.url()).pathname.startsWith('/interaction/') && page.locator('input[name="login"]').isVisible());
  await page.locator('input[name="login"]').fill(cfg.account);
  await page.locator('input[name="password"]').fill(password);
  await page.locator('form button[type="submit"], form input[type="submit"]').first().click();
  await landOn(baseOrigin, '/setup/', '#test-result', 'the test sign-in result on step 5');
  result.test_ok = (await page.locator('#test-ok').count()) > 0;
  result.test_role = (await page.locator('#test-role-name').innerText()).trim();
  result.test_claims = JSON.parse(await page.locator('#test-claims').innerText());
  result.cookies_after_test = (await browser.context.cookies(base)).map((c) => c.name);
  shots.push(await shoot(page, cfg.screenshots, 'setup-test-result.png'));

  step = 'activating';
  await page.locator('#step-5-next').click();
  await landOn(baseOrigin, '/setup/', '#activate', 'step 6 (activate)');
  await page.locator('#activate-submit').click();
  await landOn(baseOrigin, '/setup/', '#setup-done', 'the done page');
  result.login_url = (await page.locator('#login-url').innerText()).trim();
  shots.push(await shoot(page, cfg.screenshots, 'setup-done.png'));

  step = "trying another org's pages from the bound browser";
  const consoleAnswer = await visit(`${base}/admin/orgs/${cfg.other_slug}/setup-links`);
  result.other_org_console = { url: page.url(), heading: consoleAnswer.heading };
  result.other_org_api = await page.evaluate(async (slug) => {
    const r = await fetch(`/api/v1/orgs/${slug}/setup-links`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    return r.status;
  }, cfg.other_slug);
  const again = await visit(cfg.setup_url);
  result.reopened = { status: again.status, heading: again.heading };

  result.blocked_requests = blocked;
  result.page_errors = pageErrors;
  result.expected_http_errors = expected.length;
  result.screenshots = shots;
  result.ms = elapsed();
  await cleanup();
  return result;
}

await run(main, { script: 'setup.mjs', timeoutMs: SCRIPT_TIMEOUT_MS, step: () => step, url: () => (page ? page.url() : '') });
