// An operator configures an organisation's SSO in orgsso's admin console, in a real browser,
// while a colleague (a second, separate browser profile) signs in through the login URL.
//
// Playwright (playwright-core only: it downloads no browser) drives Debian's /usr/bin/chromium,
// headless, twice: one persistent context (fresh profile in a temp dir) for the operator, another
// for the member. Normally run by tests/api/browser.rs; by hand:
//
//   node admin.mjs '{"base":"http://127.0.0.1:PORT","admin_token":"...",
//                    "issuer":"http://127.0.0.1:IDPPORT","client_id":"...","client_secret":"...",
//                    "member_account":"bob","member_email":"bob@acme.test","screenshots":"/abs/dir"}'
//
// (or the same JSON in the ADMIN_CONFIG environment variable). Optional keys: "password"
// (default "any-password": the test IdP accepts any), "chromium" (default /usr/bin/chromium).
// The org "acme" must not exist yet: the script creates it.
//
// Steps: operator sign-in with the token; create the org; a connection to an issuer that is not
// there (422, reason shown, typed values kept); the real connection (login URL, redirect URI, copy
// button, clipboard); role rules (an invalid regex refused with nothing saved, reordering, a dry
// run of the rules as typed, save); the member signs in; a dry run against the member's last
// claims; a rule change that the member's next sign-in picks up; the members list and its filter;
// a JWT secret added and deleted; the audit log; POSTs without the CSRF field; every console page
// at 375 px wide; disconnecting (sessions end, members become viewers); reconnecting (new login
// URL, the old one answers 410). Screenshots: console-login.png, console-sso.png,
// console-sso-mobile.png, console-rules.png, console-rules-mobile.png, console-members.png,
// console-secrets.png, console-audit.png, console-disconnect.png (1280x800 unless "-mobile":
// 375x812).
//
// On success it prints one JSON line on stdout: {"ok":true, ...every recorded field...,
// "mobile_widths":{path:scrollWidth}, "blocked_requests":[], "page_errors":[], "browser":...,
// "ms":...}. On any failure it prints {"ok":false,"step":...,"error":...} on stdout, a readable
// message on stderr, saves a screenshot of each browser's page to the temp dir (paths in the
// message) and exits 1. Every wait has a timeout of at most 15 s (starting Chromium: 60 s); the whole script stops itself
// after 150 s. Requests to anything but 127.0.0.1 / localhost / [::1] are aborted and reported in
// "blocked_requests" with the page that made them (the test IdP's login page asks for a Google
// font; orgsso's pages must ask for nothing). "page_errors" lists uncaught exceptions and console
// errors, with the page they happened on; Chromium's "Failed to load resource: ... status of N"
// for the answers the script provokes on purpose (422, 403, 410) go to "expected_http_errors".
// The launch, the loopback-only routing, those records and the failure handling are harness.mjs's,
// shared with login.mjs.

import { mkdir } from 'node:fs/promises';
import {
  DESKTOP, MOBILE, blocked, cleanup, elapsed, fatal, isLoopback, landOnOrgsso, launchBrowser, pageErrors, readConfig, run, shoot, until,
} from './harness.mjs';

const SCRIPT_TIMEOUT_MS = 150_000;
const ORG = { slug: 'acme', name: 'Acme Corp', domains: 'acme.test' };
const BAD_ISSUER = 'http://127.0.0.1:9/nothing';
const OKTA = { scopes: 'openid email profile groups', groups_claim: 'groups' };
const SECRET_MATERIAL = '0123456789abcdef0123456789abcdef-secret';
const SECRET_AUDIENCE = 'https://api.acme.test';

let step = 'reading the configuration';
let current; // the browser the current step works in (its URL goes into the failure line)
const expectedHttpErrors = []; // the error answers provoked on purpose: {status, url}
const expectedSeen = []; // console errors for those: {browser, page, text}
const dialogs = []; // JavaScript dialogs (accepted): {browser, page, type, message}

function squash(s) {
  return String(s ?? '').replace(/\s+/g, ' ').trim();
}

function withoutHash(url) {
  try {
    const u = new URL(url);
    u.hash = '';
    return u.href;
  } catch {
    return url;
  }
}

// Chromium logs "Failed to load resource: the server responded with a status of N (...)" for
// every error answer; the ones this script provokes on purpose are announced here first.
function expectHttpError(status, url) {
  expectedHttpErrors.push({ status, url: withoutHash(url) });
}

function isExpectedHttpError(text, where) {
  const m = /^Failed to load resource: the server responded with a status of (\d+)/.exec(text);
  if (!m) return false;
  return expectedHttpErrors.some((e) => e.status === Number(m[1]) && e.url === withoutHash(where ?? ''));
}

// A browser of its own (harness.mjs's launchBrowser, tagged `name`): Chromium's console errors for
// the aborted requests are left out, those for the expected error answers go to expectedSeen;
// dialogs are accepted and recorded; tab.nav follows the main frame's navigations.
async function openBrowser(name, executablePath) {
  const tab = await launchBrowser(executablePath, {
    name,
    onConsoleError: (entry, msg) => {
      // Aborted non-loopback requests are already in blocked_requests, with the page that made them.
      if (msg.text().includes('net::ERR_BLOCKED_BY_CLIENT')) return true;
      if (!isExpectedHttpError(msg.text(), msg.location()?.url)) return false;
      expectedSeen.push(entry);
      return true;
    },
  });
  tab.nav = { seq: 0, last: null };
  const { page } = tab;
  page.on('dialog', (dialog) => {
    dialogs.push({ browser: name, page: page.url(), type: dialog.type(), message: dialog.message() });
    dialog.accept().catch(() => {});
  });
  // The final answer (not a redirect) of each main-frame navigation.
  page.on('response', (resp) => {
    const req = resp.request();
    try {
      if (!req.isNavigationRequest() || req.frame() !== page.mainFrame()) return;
    } catch {
      return;
    }
    const status = resp.status();
    if (status >= 300 && status < 400) return;
    tab.nav.seq += 1;
    tab.nav.last = { url: resp.url(), status, method: req.method() };
  });
  return tab;
}

// The text of the first element matching `selector` (waiting for it), whitespace squashed.
async function text(tab, selector) {
  const el = tab.page.locator(selector).first();
  await el.waitFor({ state: 'attached' });
  return squash(await el.textContent());
}

// The same, or null when there is no such element.
async function textIfAny(tab, selector) {
  const el = tab.page.locator(selector);
  if (!(await el.count())) return null;
  return squash(await el.first().textContent());
}

function path(tab) {
  return new URL(tab.page.url()).pathname;
}

// Opens `url`; fails unless the final answer has status `expect`. Returns the response.
async function open(tab, url, expect = 200) {
  const resp = await tab.page.goto(url, { waitUntil: 'load' });
  const status = resp ? resp.status() : null;
  if (expect !== null && status !== expect) {
    const body = squash(await tab.page.locator('body').innerText().catch(() => '')).slice(0, 300);
    throw fatal(`GET ${url} answered ${status ?? 'nothing'} (expected ${expect}): ${body}`);
  }
  return resp;
}

// Runs `action` (a click that loads another page: a link, a form submission) and waits until the
// new page has loaded. Returns its final answer {url, status, method} (after any redirect).
async function navigate(tab, what, action) {
  const p = tab.page;
  const seq = tab.nav.seq;
  await p.evaluate(() => { window.__orgssoOldPage = true; });
  await action();
  await until(`the page after ${what}`, async () => tab.nav.seq > seq
    && p.evaluate(() => !window.__orgssoOldPage && document.readyState === 'complete'));
  return tab.nav.last;
}

// Clicks a link and checks it led to `expectPath` with a 200.
async function follow(tab, selector, expectPath) {
  const nav = await navigate(tab, `clicking ${selector}`, () => tab.page.locator(selector).first().click());
  if (nav.status !== 200 || path(tab) !== expectPath) {
    throw fatal(`${selector} led to ${tab.page.url()} (status ${nav.status}), expected ${expectPath}`);
  }
  return nav;
}

// Submits with `button`; fails unless the final answer has status `expect`.
async function submit(tab, button, what, expect = 200) {
  const nav = await navigate(tab, what, () => button.click());
  if (expect !== null && nav.status !== expect) {
    const body = squash(await tab.page.locator('body').innerText().catch(() => '')).slice(0, 500);
    throw fatal(`${what}: answered ${nav.status} at ${nav.url} (expected ${expect}): ${body}`);
  }
  return nav;
}

// The URL a form posts to (absolute). (Not `form.action`: a control named "action", like the
// rules form's buttons, shadows it.)
async function formAction(tab, selector) {
  return tab.page.locator(selector)
    .evaluate((f) => Object.getOwnPropertyDescriptor(HTMLFormElement.prototype, 'action').get.call(f));
}

// Sets the viewport to 375x812, records documentElement.scrollWidth as mobile_widths[key],
// optionally takes a screenshot, and goes back to 1280x800.
async function measureMobile(tab, widths, key, shots, dir, shotName) {
  const p = tab.page;
  await p.setViewportSize(MOBILE);
  widths[key] = await p.evaluate(() => document.documentElement.scrollWidth);
  if (shotName) shots.push(await shoot(p, dir, shotName));
  await p.setViewportSize(DESKTOP);
}

// Opens `loginUrl` in the member's browser and signs in at the IdP if it asks (an IdP session
// may skip its form), consenting if asked; lands on orgsso's signed-in page.
async function memberSignsIn(tab, loginUrl, cfg, baseOrigin) {
  const p = tab.page;
  const resp = await open(tab, loginUrl, null);
  if (!resp || resp.status() >= 400) {
    const body = squash(await p.locator('body').innerText().catch(() => '')).slice(0, 300);
    throw fatal(`GET ${loginUrl} ended at ${p.url()} with ${resp ? resp.status() : 'no answer'}: ${body}`);
  }
  const where = await until(`orgsso's signed-in page or the IdP login form (from ${loginUrl})`, async () => {
    const u = new URL(p.url());
    if (u.origin === baseOrigin) {
      if (u.pathname === '/' && await p.locator('h1').count()) return 'signed-in';
      const err = p.locator('.error');
      if (await err.count()) throw fatal(`orgsso answered with an error: ${squash(await err.first().innerText())}`);
      return false;
    }
    if (u.pathname.startsWith('/interaction/') && await p.locator('input[name="login"]').isVisible()) return 'form';
    return false;
  });
  let formShown = false;
  let consented = false;
  if (where === 'form') {
    formShown = true;
    await p.locator('input[name="login"]').fill(cfg.member_account);
    await p.locator('input[name="password"]').fill(cfg.password ?? 'any-password');
    const loginPage = p.url();
    await p.locator('form button[type="submit"], form input[type="submit"]').first().click();
    consented = await landOnOrgsso(p, {
      loginPage, baseOrigin, what: "orgsso's signed-in page after the IdP login form", orgssoErrors: true,
    });
  }
  await p.waitForLoadState('load');
  const heading = await text(tab, 'h1');
  if (heading !== 'You are signed in') {
    const body = squash(await p.locator('body').innerText()).slice(0, 500);
    throw fatal(`landed on ${p.url()} with heading ${JSON.stringify(heading)}: ${body}`);
  }
  return { role: await signedInRole(tab), idp_form_shown: formShown, consent_shown: consented };
}

// The role on orgsso's signed-in page: the `.role` element, else the "Role" entry of its list.
async function signedInRole(tab) {
  const role = await textIfAny(tab, '.role');
  if (role !== null) return role;
  return tab.page.locator('dl').first().evaluate((dl) => {
    for (const dt of dl.querySelectorAll('dt')) {
      const dd = dt.nextElementSibling;
      if (dt.textContent.trim() === 'Role' && dd && dd.tagName === 'DD') return dd.textContent.trim();
    }
    return null;
  });
}

// The rule rows of the rules form, as the browser holds them.
async function ruleRows(tab) {
  return tab.page.locator('#rule-rows tr.rule').evaluateAll((trs) => trs.map((tr) => {
    const v = (name) => tr.querySelector(`[name="${name}"]`)?.value ?? null;
    return { claim: v('claim'), op: v('op'), value: v('value'), role: v('role') };
  }));
}

// The error shown for rule row `i`: `.rule-error` inside the row, or in the row right after it
// (a `tr.rule-error-row`); '' when there is none.
async function ruleError(tab, i) {
  return tab.page.locator('#rule-rows tr.rule').nth(i).evaluate((tr) => {
    const parts = [...tr.querySelectorAll('.rule-error')].map((e) => e.textContent);
    const next = tr.nextElementSibling;
    if (next && !next.matches('tr.rule')) {
      if (next.matches('.rule-error')) parts.push(next.textContent);
      parts.push(...[...next.querySelectorAll('.rule-error')].map((e) => e.textContent));
    }
    return parts.join(' ').replace(/\s+/g, ' ').trim();
  });
}

// Makes the rules form hold exactly `rules` (adding rows with #rule-add, removing extra ones
// from the end with their .rule-remove button), typed in order.
async function typeRules(tab, rules) {
  const p = tab.page;
  const rows = p.locator('#rule-rows tr.rule');
  let n = await rows.count();
  while (n < rules.length) {
    await p.locator('button#rule-add').click();
    const want = n + 1;
    await until(`a new rule row after clicking #rule-add (${want} rows)`, async () => (await rows.count()) === want);
    n = want;
  }
  while (n > rules.length) {
    await rows.nth(n - 1).locator('.rule-remove').click();
    const want = n - 1;
    await until(`a rule row to go after clicking .rule-remove (${want} rows)`, async () => (await rows.count()) === want);
    n = want;
  }
  for (const [i, rule] of rules.entries()) {
    const row = rows.nth(i);
    await row.locator('input[name="claim"]').fill(rule.claim);
    await row.locator('select[name="op"]').selectOption(rule.op);
    await row.locator('input[name="value"]').fill(rule.value);
    await row.locator('select[name="role"]').selectOption(rule.role);
  }
  const typed = await ruleRows(tab);
  const same = typed.length === rules.length && rules.every((r, i) => ['claim', 'op', 'value', 'role'].every((k) => typed[i][k] === r[k]));
  if (!same) throw fatal(`the rules form holds ${JSON.stringify(typed)} after typing ${JSON.stringify(rules)}`);
}

function sameRules(a, b) {
  return a.length === b.length && b.every((r, i) => ['claim', 'op', 'value', 'role'].every((k) => a[i][k] === r[k]));
}

// Clicks #dry-run and returns {role, rule} from #dry-run-role and #dry-run-rule ("rule" is the
// 1-based number as a number, or the text shown when it is not one, e.g. "default").
async function dryRun(tab) {
  const p = tab.page;
  // Old results are blanked first, so a result seen afterwards is the new one (whether the page
  // is re-rendered by the server or updated in place).
  await p.evaluate(() => {
    for (const id of ['dry-run-role', 'dry-run-rule']) {
      const el = document.getElementById(id);
      if (el) el.textContent = '';
    }
    window.__orgssoOldPage = true;
  });
  await p.locator('button#dry-run').click();
  await until('the dry-run result', async () => p.evaluate(() => {
    const role = document.getElementById('dry-run-role');
    if (document.readyState !== 'complete') return false;
    if (!window.__orgssoOldPage) return true; // the server's page: with a result or an error
    return Boolean(role && role.textContent.trim());
  }));
  const role = await textIfAny(tab, '#dry-run-role');
  const rule = await textIfAny(tab, '#dry-run-rule');
  if (!role) {
    const why = (await textIfAny(tab, '#rules-error')) || squash(await p.locator('body').innerText()).slice(0, 500);
    throw fatal(`the dry run shows no role: ${why}`);
  }
  return { role, rule: /^\d+$/.test(rule ?? '') ? Number(rule) : rule };
}

// The notice after a POST; fails when there is none.
async function notice(tab, what) {
  const n = await textIfAny(tab, '#notice');
  if (!n) throw fatal(`no #notice after ${what} (page ${tab.page.url()})`);
  return n;
}

// Members rows: [{email, name, role, source}] (a role shown as a <select> counts as its value).
async function memberRows(tab) {
  await tab.page.locator('#members').waitFor({ state: 'attached' });
  return tab.page.locator('#members tr.member').evaluateAll((trs) => trs.map((tr) => {
    const cell = (c) => (tr.querySelector(`td.${c}`)?.textContent ?? '').replace(/\s+/g, ' ').trim();
    const select = tr.querySelector('td.role select');
    return { email: cell('email'), name: cell('name'), role: select ? select.value : cell('role'), source: cell('source') };
  }));
}

async function memberRole(tab, email) {
  const rows = await memberRows(tab);
  const row = rows.find((r) => r.email.toLowerCase() === email.toLowerCase())
    ?? rows.find((r) => r.email.toLowerCase().includes(email.toLowerCase()));
  if (!row) throw fatal(`no member row for ${email}: ${JSON.stringify(rows)}`);
  return row.role;
}

async function main() {
  const { cfg, base, baseOrigin } = readConfig('ADMIN_CONFIG', ['base', 'admin_token', 'issuer', 'client_id', 'client_secret', 'member_account', 'member_email', 'screenshots']);
  if (!isLoopback(cfg.issuer)) throw fatal(`"issuer" must be a loopback URL, got ${cfg.issuer}`);
  const executablePath = cfg.chromium ?? '/usr/bin/chromium';
  const dir = cfg.screenshots;
  await mkdir(dir, { recursive: true });
  const shots = [];
  const widths = {}; // mobile_widths: console path -> scrollWidth at 375 px
  const out = {}; // the recorded fields
  const orgPath = `/admin/orgs/${ORG.slug}`;
  const rulesPath = `${orgPath}/rules`;
  const membersPath = `${orgPath}/members`;

  step = `launching ${executablePath} for the operator`;
  const admin = await openBrowser('admin', executablePath);
  current = admin;
  await admin.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: baseOrigin });
  const browserVersion = admin.context.browser()?.version() ?? null;
  const ap = admin.page;

  // 1. Operator sign-in.
  step = `opening ${base}/admin signed out`;
  await open(admin, `${base}/admin`);
  if (path(admin) !== '/admin/login') throw fatal(`GET /admin signed out ended at ${ap.url()}, expected /admin/login`);
  const tokenInput = ap.locator('#operator-login input[name="token"]');
  await tokenInput.waitFor({ state: 'visible' });
  shots.push(await shoot(ap, dir, 'console-login.png'));

  step = 'signing in with the admin token';
  await tokenInput.fill(cfg.admin_token);
  const signIn = ap.locator('#operator-login').locator('button:not([type]), button[type="submit"], input[type="submit"]').first();
  await submit(admin, signIn, 'the operator sign-in');
  if (path(admin) !== '/admin') throw fatal(`the operator sign-in ended at ${ap.url()}, expected /admin`);
  await ap.locator('#orgs').waitFor({ state: 'attached' });
  await ap.locator('#create-org').waitFor({ state: 'visible' });

  // 2. The org.
  step = `creating the org "${ORG.slug}"`;
  await ap.locator('#create-org input[name="slug"]').fill(ORG.slug);
  await ap.locator('#create-org input[name="name"]').fill(ORG.name);
  await ap.locator('#create-org input[name="domains"]').fill(ORG.domains);
  await submit(admin, ap.locator('#create-org-submit'), 'creating the org');
  if (path(admin) !== orgPath) throw fatal(`creating the org ended at ${ap.url()}, expected ${orgPath}`);
  const statusNew = await text(admin, '#sso-status');
  if (statusNew !== 'not configured') throw fatal(`#sso-status of a new org is ${JSON.stringify(statusNew)}, expected "not configured"`);

  step = 'finding the new org in the orgs list';
  await open(admin, `${base}/admin`);
  const orgLink = ap.locator(`#orgs a[href="${orgPath}"]`);
  if (!(await orgLink.count())) throw fatal(`#orgs has no link to ${orgPath}`);
  await measureMobile(admin, widths, '/admin', shots, dir);
  await follow(admin, `#orgs a[href="${orgPath}"]`, orgPath);
  await ap.locator('nav.console').waitFor({ state: 'attached' });

  // 3. A connection to an issuer that is not there.
  step = 'choosing the Okta preset';
  const connect = ap.locator('form#connect');
  await connect.locator('select[name="preset"]').selectOption('okta');
  await until('the Okta preset to fill scopes and groups_claim', async () => {
    const scopes = await connect.locator('input[name="scopes"]').inputValue();
    const claim = await connect.locator('input[name="groups_claim"]').inputValue();
    return scopes === OKTA.scopes && claim === OKTA.groups_claim;
  }, 5_000).catch(async (err) => {
    const scopes = await connect.locator('input[name="scopes"]').inputValue();
    const claim = await connect.locator('input[name="groups_claim"]').inputValue();
    throw fatal(`the okta preset filled scopes ${JSON.stringify(scopes)} and groups_claim ${JSON.stringify(claim)}, expected ${JSON.stringify(OKTA)} (${err.message})`);
  });

  step = `connecting to an issuer that is not there (${BAD_ISSUER})`;
  await connect.locator('input[name="issuer"]').fill(BAD_ISSUER);
  await connect.locator('input[name="client_id"]').fill(cfg.client_id);
  await connect.locator('input[name="client_secret"]').fill(cfg.client_secret);
  expectHttpError(422, await formAction(admin, 'form#connect'));
  const bad = await submit(admin, ap.locator('#connect-submit'), 'saving the bad issuer', 422);
  out.bad_issuer_status = bad.status;
  out.bad_issuer_error = await text(admin, '#connect-error');
  if (!out.bad_issuer_error) throw fatal('#connect-error is empty after the bad issuer');
  const keptIssuer = await ap.locator('form#connect input[name="issuer"]').inputValue();
  if (keptIssuer !== BAD_ISSUER) throw fatal(`after the 422 the issuer field holds ${JSON.stringify(keptIssuer)}, expected the typed ${BAD_ISSUER}`);
  out.bad_issuer_secret_cleared = (await ap.locator('form#connect input[name="client_secret"]').inputValue()) === '';

  // 4. The real connection.
  step = `connecting to ${cfg.issuer}`;
  await connect.locator('input[name="issuer"]').fill(cfg.issuer);
  await connect.locator('input[name="client_id"]').fill(cfg.client_id);
  await connect.locator('input[name="client_secret"]').fill(cfg.client_secret);
  if (!(await connect.locator('input[name="scopes"]').inputValue())) await connect.locator('input[name="scopes"]').fill(OKTA.scopes);
  await submit(admin, ap.locator('#connect-submit'), 'saving the connection');
  const statusConnected = await text(admin, '#sso-status');
  if (statusConnected !== 'connected') {
    const why = await textIfAny(admin, '#connect-error');
    throw fatal(`#sso-status is ${JSON.stringify(statusConnected)} after connecting${why ? `: ${why}` : ''}`);
  }
  out.login_url = await text(admin, '#login-url');
  out.redirect_uri = await text(admin, '#redirect-uri');
  await ap.locator('button[data-copy="redirect-uri"]').waitFor({ state: 'visible' });

  step = 'copying the login URL';
  const copy = ap.locator('button[data-copy="login-url"]');
  await copy.click();
  await until('the copy button to say "Copied"', async () => squash(await copy.textContent()).includes('Copied'));
  out.copy_button_text = squash(await copy.textContent());
  out.clipboard = await ap.evaluate(() => navigator.clipboard.readText());
  shots.push(await shoot(ap, dir, 'console-sso.png'));
  await measureMobile(admin, widths, orgPath, shots, dir, 'console-sso-mobile.png');

  // 5. Rules.
  step = 'opening the rules page';
  await follow(admin, '#nav-rules', rulesPath);
  const rulesForm = ap.locator('form#rules');
  await rulesForm.waitFor({ state: 'attached' });
  await rulesForm.locator('select[name="default_role"]').selectOption('viewer');
  const ruleA = { claim: 'groups', op: 'contains', value: 'engineering', role: 'developer' };
  const badB = { claim: 'groups', op: 'matches', value: '(', role: 'admin' };
  const ruleB = { claim: 'groups', op: 'contains', value: 'admins', role: 'admin' };

  step = 'typing a valid rule and an invalid regex rule';
  await typeRules(admin, [ruleA, badB]);

  step = 'saving the rules with an invalid regex';
  expectHttpError(422, await formAction(admin, 'form#rules'));
  await submit(admin, ap.locator('button#rules-save'), 'saving the invalid rules', 422);
  const kept = await ruleRows(admin);
  if (!sameRules(kept, [ruleA, badB])) throw fatal(`after the 422 the rule rows are ${JSON.stringify(kept)}, expected them as typed`);
  out.invalid_rule_error = await ruleError(admin, 1);
  if (!out.invalid_rule_error) throw fatal('the invalid rule (row 2) shows no .rule-error');
  const errorA = await ruleError(admin, 0);
  if (errorA) throw fatal(`the valid rule (row 1) shows an error: ${errorA}`);
  out.rules_error = await text(admin, '#rules-error');
  if (!out.rules_error) throw fatal('#rules-error is empty after the invalid rules');

  step = 'reloading the rules page after the refused save';
  await open(admin, `${base}${rulesPath}`);
  out.rules_after_invalid = (await ruleRows(admin)).filter((r) => (r.claim ?? '').trim() !== '').length;

  step = 'typing two valid rules and moving the second up';
  await rulesForm.locator('select[name="default_role"]').selectOption('viewer');
  await typeRules(admin, [ruleA, ruleB]);
  await ap.locator('#rule-rows tr.rule').nth(1).locator('.rule-up').click();
  await until('the "admins" rule to move to the top', async () => sameRules(await ruleRows(admin), [ruleB, ruleA]), 5_000)
    .catch(async () => { throw fatal(`after .rule-up the rows are ${JSON.stringify(await ruleRows(admin))}, expected the "admins" rule first`); });

  step = 'dry-running the rules as typed (not saved)';
  await rulesForm.locator('textarea[name="claims"]').fill('{"groups":["engineering"]}');
  out.dry_run_typed = await dryRun(admin);
  out.dry_run_kept_rows = sameRules(await ruleRows(admin), [ruleB, ruleA]);
  if (!out.dry_run_kept_rows) {
    // The dry run re-rendered the saved rules instead of the typed ones: type them again.
    await typeRules(admin, [ruleB, ruleA]);
  }

  step = 'saving the rules';
  await submit(admin, ap.locator('button#rules-save'), 'saving the rules');
  out.rules_saved_notice = await notice(admin, 'saving the rules');
  const saved = await ruleRows(admin);
  if (!sameRules(saved, [ruleB, ruleA])) throw fatal(`after saving the rule rows are ${JSON.stringify(saved)}`);
  await measureMobile(admin, widths, rulesPath, shots, dir, 'console-rules-mobile.png');

  // 6. The member signs in.
  step = `launching ${executablePath} for the member`;
  const member = await openBrowser('member', executablePath);
  current = member;
  step = `the member signs in through ${out.login_url} as ${cfg.member_account}`;
  const first = await memberSignsIn(member, out.login_url, cfg, baseOrigin);
  out.member_role_before = first.role;
  out.member_signins = [{ idp_form_shown: first.idp_form_shown, consent_shown: first.consent_shown }];

  // 7. A dry run against the member's last claims; the engineering rule becomes admin.
  current = admin;
  step = 'opening the rules page for a dry run with a sample';
  await open(admin, `${base}${rulesPath}`);
  const sampleOptions = await ap.locator('form#rules select[name="sample"] option')
    .evaluateAll((os) => os.map((o) => ({ value: o.value, text: o.textContent.trim() })));
  const sample = sampleOptions.find((o) => o.value && o.text.includes(cfg.member_email));
  if (!sample) throw fatal(`no sample option mentions ${cfg.member_email}: ${JSON.stringify(sampleOptions)}`);
  const claimsBox = rulesForm.locator('textarea[name="claims"]');
  await claimsBox.fill('');
  await rulesForm.locator('select[name="sample"]').selectOption(sample.value);
  const sampleClaims = await until('the sample to fill the claims box', async () => claimsBox.inputValue(), 5_000);
  try {
    const parsed = JSON.parse(sampleClaims);
    out.sample_claims_json = parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed);
    out.sample_claims_groups = out.sample_claims_json && 'groups' in parsed ? parsed.groups : null;
  } catch {
    out.sample_claims_json = false;
    out.sample_claims_groups = null;
  }
  step = 'dry-running the rules against the member\'s last claims';
  out.dry_run_sample = await dryRun(admin);
  // The desktop picture shows the editor with a dry-run result.
  shots.push(await shoot(ap, dir, 'console-rules.png'));

  step = 'changing the engineering rule to admin';
  const rowsNow = await ruleRows(admin);
  const eng = rowsNow.findIndex((r) => r.value === 'engineering');
  if (eng < 0) throw fatal(`no rule row with value "engineering": ${JSON.stringify(rowsNow)}`);
  await ap.locator('#rule-rows tr.rule').nth(eng).locator('select[name="role"]').selectOption('admin');
  await submit(admin, ap.locator('button#rules-save'), 'saving the changed rule');
  out.rules_changed_notice = await notice(admin, 'saving the changed rule');

  step = 'reading the member\'s role on the members page';
  await follow(admin, '#nav-members', membersPath);
  out.members_role_before_relogin = await memberRole(admin, cfg.member_email);
  shots.push(await shoot(ap, dir, 'console-members.png'));
  await measureMobile(admin, widths, membersPath, shots, dir);

  // 8. The member signs in again and gets the new role.
  current = member;
  step = `the member signs in again through ${out.login_url}`;
  const second = await memberSignsIn(member, out.login_url, cfg, baseOrigin);
  out.member_role_after = second.role;
  out.member_signins.push({ idp_form_shown: second.idp_form_shown, consent_shown: second.consent_shown });

  current = admin;
  step = 'reading the member\'s new role on the members page';
  await open(admin, `${base}${membersPath}`);
  out.members_role_after_relogin = await memberRole(admin, cfg.member_email);

  step = 'filtering the members';
  const localPart = cfg.member_email.split('@')[0];
  const q = ap.locator('form#member-filter input[name="q"]');
  // (Enter in the search field submits the GET form, with or without a submit button.)
  const filter = async (value) => {
    await q.fill(value);
    const nav = await navigate(admin, `filtering the members by ${JSON.stringify(value)}`, () => q.press('Enter'));
    if (nav.status !== 200 || path(admin) !== membersPath) {
      throw fatal(`filtering by ${JSON.stringify(value)} answered ${nav.status} at ${admin.page.url()}`);
    }
    return (await memberRows(admin)).length;
  };
  out.filter_hits = await filter(localPart);
  out.filter_misses = await filter('nobody-here');

  // 9. A JWT secret.
  step = 'opening the secrets page';
  await follow(admin, '#nav-secrets', `${orgPath}/secrets`);
  step = 'adding an hs256 secret';
  const addSecret = ap.locator('form#add-secret');
  await addSecret.locator('input[name="name"]').fill('api');
  await addSecret.locator('select[name="type"]').selectOption('hs256');
  await addSecret.locator('textarea[name="material"]').fill(SECRET_MATERIAL);
  await addSecret.locator('input[name="audiences"]').fill(SECRET_AUDIENCE);
  const added = await submit(admin, ap.locator('#add-secret-submit'), 'adding the secret', null);
  const secretError = await textIfAny(admin, '#secret-error');
  if (added.status !== 200 || secretError) throw fatal(`adding the secret answered ${added.status}: ${secretError ?? '(no #secret-error)'}`);
  const secretRow = ap.locator('#secrets tr.secret[data-name="api"]');
  out.secret_listed = (await secretRow.count()) > 0;
  out.secret_type = out.secret_listed ? await textIfAny(admin, '#secrets tr.secret[data-name="api"] td.type') : null;
  out.secret_shown_after_save = (await ap.content()).includes(SECRET_MATERIAL);
  shots.push(await shoot(ap, dir, 'console-secrets.png'));
  await measureMobile(admin, widths, `${orgPath}/secrets`, shots, dir);
  if (!out.secret_listed) throw fatal('the secret "api" is not in #secrets after adding it');

  step = 'deleting the secret';
  await submit(admin, secretRow.locator('form.delete-secret').locator('button, input[type="submit"]').first(), 'deleting the secret');
  out.secret_deleted_notice = await notice(admin, 'deleting the secret');
  out.secret_deleted = (await ap.locator('#secrets tr.secret[data-name="api"]').count()) === 0;

  // 10. The audit log.
  step = 'reading the audit log';
  await follow(admin, '#nav-audit', `${orgPath}/audit`);
  await ap.locator('#audit').waitFor({ state: 'attached' });
  const actions = (await ap.locator('#audit tr.event td.action').allTextContents()).map(squash);
  out.audit_actions = [...new Set(actions)];
  shots.push(await shoot(ap, dir, 'console-audit.png'));
  await measureMobile(admin, widths, `${orgPath}/audit`, shots, dir);

  // 11. POSTs without the CSRF field.
  step = 'saving the rules without the csrf field';
  await open(admin, `${base}${rulesPath}`);
  const removed = await rulesForm.evaluate((f) => {
    const inputs = f.querySelectorAll('input[name="csrf"]');
    for (const i of inputs) i.remove();
    return inputs.length;
  });
  if (!removed) throw fatal('form#rules carries no input[name=csrf]');
  expectHttpError(403, await formAction(admin, 'form#rules'));
  const refused = await submit(admin, ap.locator('button#rules-save'), 'saving without the csrf field', null);
  out.csrf_missing_status = refused.status;
  out.csrf_missing_heading = await textIfAny(admin, 'h1');

  step = 'a same-origin fetch POST without the csrf field';
  await open(admin, `${base}${rulesPath}`);
  expectHttpError(403, `${base}${rulesPath}`);
  const fetched = await ap.evaluate(async (url) => {
    try {
      const resp = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'action=save&default_role=admin',
      });
      return { status: resp.status };
    } catch (err) {
      return { status: null, error: String(err) };
    }
  }, rulesPath);
  out.csrf_fetch_status = fetched.status;
  if (fetched.error) out.csrf_fetch_error = fetched.error;

  // 13. Disconnect.
  step = 'opening the disconnect confirmation';
  await open(admin, `${base}${orgPath}`);
  await follow(admin, '#disconnect-link', `${orgPath}/disconnect`);
  const count = async (sel) => {
    const t = await text(admin, sel);
    return /^\d+$/.test(t) ? Number(t) : t;
  };
  out.confirm_sessions = await count('#disconnect-sessions');
  out.confirm_members = await count('#disconnect-members');
  shots.push(await shoot(ap, dir, 'console-disconnect.png'));
  await measureMobile(admin, widths, `${orgPath}/disconnect`, shots, dir);

  step = 'confirming the disconnect';
  await submit(admin, ap.locator('form#disconnect #disconnect-confirm'), 'confirming the disconnect');
  if (path(admin) !== orgPath) throw fatal(`the disconnect ended at ${ap.url()}, expected ${orgPath}`);
  const statusDisconnected = await text(admin, '#sso-status');
  if (statusDisconnected !== 'disconnected') throw fatal(`#sso-status is ${JSON.stringify(statusDisconnected)} after disconnecting`);
  out.disconnect_notice = await notice(admin, 'the disconnect');

  // 14. The member's session ended.
  current = member;
  step = 'the member reloads the signed-in page';
  // (Signed out, "/" may answer 401 rather than redirect to the sign-in page.)
  expectHttpError(401, `${base}/`);
  const reloaded = await member.page.reload({ waitUntil: 'load' });
  out.member_after_disconnect = {
    url: member.page.url(),
    status: reloaded ? reloaded.status() : null,
    heading: await textIfAny(member, 'h1'),
  };

  // 15. Reconnect: a new login URL; the old one is retired.
  current = admin;
  step = 'reconnecting';
  const issuerNow = await connect.locator('input[name="issuer"]').inputValue();
  const clientNow = await connect.locator('input[name="client_id"]').inputValue();
  const scopesNow = await connect.locator('input[name="scopes"]').inputValue();
  const trim = (s) => s.replace(/\/+$/, '');
  out.reconnect_prefilled = trim(issuerNow) === trim(cfg.issuer) && clientNow === cfg.client_id && scopesNow !== '';
  out.reconnect_secret_empty = (await connect.locator('input[name="client_secret"]').inputValue()) === '';
  if (trim(issuerNow) !== trim(cfg.issuer)) await connect.locator('input[name="issuer"]').fill(cfg.issuer);
  if (clientNow !== cfg.client_id) await connect.locator('input[name="client_id"]').fill(cfg.client_id);
  if (!scopesNow) await connect.locator('input[name="scopes"]').fill(OKTA.scopes);
  await connect.locator('input[name="client_secret"]').fill(cfg.client_secret);
  await submit(admin, ap.locator('#connect-submit'), 'reconnecting');
  const statusReconnected = await text(admin, '#sso-status');
  if (statusReconnected !== 'connected') {
    const why = await textIfAny(admin, '#connect-error');
    throw fatal(`#sso-status is ${JSON.stringify(statusReconnected)} after reconnecting${why ? `: ${why}` : ''}`);
  }
  out.new_login_url = await text(admin, '#login-url');

  current = member;
  step = `the member opens the old login URL ${out.login_url}`;
  expectHttpError(410, out.login_url);
  const old = await open(member, out.login_url, null);
  out.old_login_url_status = old ? old.status() : null;

  step = 'closing the browsers';
  const result = {
    ok: true,
    ...out,
    mobile_widths: widths,
    blocked_requests: blocked,
    page_errors: pageErrors,
    expected_http_errors: expectedSeen,
    dialogs,
    browser: browserVersion,
    screenshots: shots,
    ms: elapsed(),
  };
  await cleanup();
  return result;
}

await run(main, { script: 'admin.mjs', timeoutMs: SCRIPT_TIMEOUT_MS, step: () => step, url: () => (current ? current.page.url() : '') });
