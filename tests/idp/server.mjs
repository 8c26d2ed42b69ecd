// Test OpenID Provider for orgsso's integration tests.
//
// A real `oidc-provider` (see package.json for the pinned version) listening on
// 127.0.0.1 only. It is normally started by tests/api/idp.rs (TestIdp::start),
// which passes the configuration in the IDP_CONFIG environment variable:
//
//   {
//     "port": 0,                       // 0 = pick a free port; otherwise bind exactly this port
//     "clients": [{ "client_id": "...", "client_secret": "...",
//                   "redirect_uris": ["http://127.0.0.1:1234/cb"],
//                   "token_endpoint_auth_method": "client_secret_basic",  // optional, or client_secret_post,
//                   // or private_key_jwt with "jwks_uri" or "jwks" (no client_secret then)
//                   "post_logout_redirect_uris": ["http://127.0.0.1:1234/signed-out"],  // optional
//                   "backchannel_logout_uri": "http://127.0.0.1:1234/sso/backchannel-logout",  // optional
//                   "backchannel_logout_session_required": true }],  // optional (ID tokens then carry sid)
//     "accounts": { "alice": { "email": "...", "email_verified": true, "name": "...", "groups": ["..."] } },
//     "initial_stats": { "jwks_fetches": 0, "token_requests": 0 },         // optional (used across restarts)
//     "conform_id_token_claims": false,  // optional: true = scope claims only at userinfo (/me)
//     "signed_userinfo": false           // optional: true = userinfo answers a signed JWT (RS256)
//   }
//
// Once listening it prints exactly one line on stdout:
//   READY {"issuer":"http://127.0.0.1:<port>","port":<port>,"kid":"<kid>"}
// Everything else (oidc-provider warnings, errors) goes to stderr. Nothing secret is logged.
//
// Behaviour:
// - A fresh RSA-2048 RS256 signing key with a random kid at every start (restart = key rotation).
// - PKCE (S256) required for every authorization request; authorization_code + response_type=code.
// - Scopes openid, email, profile, groups; their claims are put into the ID token too
//   (conformIdTokenClaims: false), unless conform_id_token_claims is true: then, as several
//   real providers do, the ID token carries only `sub` and the scope claims come from userinfo.
//   signed_userinfo: true makes userinfo answer `application/jwt` signed with the ID-token key.
// - devInteractions: GET /interaction/<uid> renders a login form; POST it with
//   prompt=login&login=<account id>&password=<anything>. Unknown account ids are refused
//   (200 with the login form again, plus "unknown account: <id>").
// - Consent is pre-granted (loadExistingGrant), so the consent screen normally never appears.
// - Test hook: a request carrying the header `x-test-idp-account: <id>` whose IdP session
//   belongs to a different account is sent through the login prompt again (so one cookie
//   jar can log in as several accounts one after another).
// - Test control endpoints (handled before the provider):
//     PUT /__test/accounts/<id>   body: JSON object of claims  -> 204 (creates or replaces)
//     GET /__test/stats           -> {"jwks_fetches": n, "token_requests": n, "end_session_hints": n,
//                                     "token_auth": {"client_secret_basic": n, ...}}
//                                    (end_session_hints: end-session requests with id_token_hint;
//                                    token_auth: how each token request authenticated)
//     PUT /__test/id_token_kid    body: {"mode": "keep" | "omit" | "replace", "kid": "<kid>"}
//                                 -> 204. ID tokens in token responses are re-signed with the same
//                                    key without a kid ("omit") or with another kid ("replace");
//                                    "keep" (the default, also after a restart) sends them as made.
//     PUT /__test/clients/<id>    body: client metadata as in IDP_CONFIG.clients (client_id
//                                 taken from the path) -> 204; registers or replaces a client
//                                 (kept until a restart), e.g. a private_key_jwt client whose
//                                 jwks_uri is only known once orgsso made its key
// - Client authentication: a client registered for client_secret_basic or client_secret_post
//   is refused (401 invalid_client) when it authenticates with the other secret method, as Okta,
//   Auth0 and others do (oidc-provider on its own accepts either). private_key_jwt clients are
//   checked by oidc-provider (assertion signature against the client's jwks or jwks_uri, iss,
//   sub, aud, exp, jti replay). Fetching a jwks_uri on 127.0.0.1 is allowed (the provider's
//   `fetch` option drops its special-use-address guard: everything here is loopback).
// - Back-channel logout (OpenID Connect Back-Channel Logout 1.0) is on: a client registered with
//   backchannel_logout_uri receives a logout token (POST, form field logout_token, typ
//   logout+jwt, RS256 with the ID-token key) when the user ends the IdP session at end_session
//   (confirmed "yes"); with backchannel_logout_session_required its ID tokens and logout tokens
//   carry `sid`. Deliveries are counted in stats (backchannel_sent / backchannel_failed).
// - Exits when stdin closes (parent died) and on SIGTERM / SIGINT / SIGHUP. To run it by hand
//   with stdin at /dev/null, set IDP_IGNORE_STDIN=1.

import * as crypto from 'node:crypto';
import * as http from 'node:http';

// Keep stdout for the READY line only: oidc-provider prints notices with console.info.
console.log = (...args) => console.error(...args);
console.info = (...args) => console.error(...args);
// Drop oidc-provider's start-up warnings that are expected for a test provider.
const EXPECTED_WARNINGS = [
  'Unsupported runtime', 'in-memory adapter', 'devInteractions is enabled', 'already parsed request body',
];
const originalWarn = console.warn;
console.warn = (...args) => {
  const text = args.map(String).join(' ');
  if (EXPECTED_WARNINGS.some((w) => text.includes(w))) return;
  originalWarn(...args);
};

// Imported dynamically so that the console overrides above are in place first.
const { default: Provider, interactionPolicy } = await import('oidc-provider');

function fail(message) {
  process.stderr.write(`test-idp: ${message}\n`);
  process.exit(1);
}

// ---------------------------------------------------------------------------------------------
// Lifetime: exit when the parent goes away.
// ---------------------------------------------------------------------------------------------
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
  process.on(signal, () => process.exit(0));
}
if (process.env.IDP_IGNORE_STDIN !== '1') {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('close', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume(); // discard anything written to us; we only care about EOF
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------
let config;
try {
  config = JSON.parse(process.env.IDP_CONFIG ?? '');
} catch (err) {
  fail(`IDP_CONFIG must be set to a JSON document (${err.message})`);
}
if (config === null || typeof config !== 'object') fail('IDP_CONFIG must be a JSON object');

const requestedPort = Number(config.port ?? 0);
if (!Number.isInteger(requestedPort) || requestedPort < 0 || requestedPort > 65535) {
  fail('IDP_CONFIG.port must be an integer in 0..65535');
}

// The registered token endpoint auth method of every client, for the check in front of /token.
const registeredMethods = new Map();

// Client metadata for oidc-provider from the test's description; throws a message on bad input.
function clientMetadata(c, label) {
  const method = c.token_endpoint_auth_method ?? 'client_secret_basic';
  const fields = method === 'private_key_jwt' ? ['client_id'] : ['client_id', 'client_secret'];
  for (const field of fields) {
    if (typeof c[field] !== 'string' || c[field] === '') throw new Error(`${label}.${field} must be a non-empty string`);
  }
  if (!Array.isArray(c.redirect_uris) || c.redirect_uris.length === 0) {
    throw new Error(`${label}.redirect_uris must be a non-empty array`);
  }
  if (!['client_secret_basic', 'client_secret_post', 'private_key_jwt'].includes(method)) {
    throw new Error(`${label}.token_endpoint_auth_method must be client_secret_basic, client_secret_post or private_key_jwt`);
  }
  const metadata = {
    client_id: c.client_id,
    redirect_uris: c.redirect_uris,
    token_endpoint_auth_method: method,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    id_token_signed_response_alg: 'RS256',
    post_logout_redirect_uris: Array.isArray(c.post_logout_redirect_uris) ? c.post_logout_redirect_uris : [],
    ...(config.signed_userinfo === true ? { userinfo_signed_response_alg: 'RS256' } : {}),
    ...(typeof c.backchannel_logout_uri === 'string' ? { backchannel_logout_uri: c.backchannel_logout_uri } : {}),
    ...(c.backchannel_logout_session_required === true ? { backchannel_logout_session_required: true } : {}),
  };
  if (method === 'private_key_jwt') {
    if (c.jwks_uri === undefined && c.jwks === undefined) throw new Error(`${label} needs jwks_uri or jwks for private_key_jwt`);
    if (c.jwks_uri !== undefined) metadata.jwks_uri = c.jwks_uri;
    if (c.jwks !== undefined) metadata.jwks = c.jwks;
  } else {
    metadata.client_secret = c.client_secret;
  }
  return metadata;
}

const clients = (config.clients ?? []).map((c, i) => {
  try {
    const metadata = clientMetadata(c, `clients[${i}]`);
    registeredMethods.set(metadata.client_id, metadata.token_endpoint_auth_method);
    return metadata;
  } catch (err) {
    return fail(err.message);
  }
});

// Mutable account store: id -> claims object (without `sub`; sub is always the id).
const accounts = new Map();
for (const [id, claims] of Object.entries(config.accounts ?? {})) {
  if (claims === null || typeof claims !== 'object' || Array.isArray(claims)) {
    fail(`accounts.${id} must be a JSON object of claims`);
  }
  accounts.set(id, claims);
}

const stats = {
  jwks_fetches: Number(config.initial_stats?.jwks_fetches ?? 0),
  token_requests: Number(config.initial_stats?.token_requests ?? 0),
  token_auth: { ...(config.initial_stats?.token_auth ?? {}) },
  end_session_hints: Number(config.initial_stats?.end_session_hints ?? 0),
  backchannel_sent: Number(config.initial_stats?.backchannel_sent ?? 0),
  backchannel_failed: Number(config.initial_stats?.backchannel_failed ?? 0),
};

// How ID tokens leave the token endpoint (PUT /__test/id_token_kid); not kept across restarts.
let idTokenKid = { mode: 'keep' };

// ---------------------------------------------------------------------------------------------
// HTTP server: listen first (to learn the port), then build the provider with that issuer.
// ---------------------------------------------------------------------------------------------
let providerCallback; // set once the provider exists
let jwksPath = '/jwks';
let tokenPath = '/token';
let endSessionPath = '/session/end';

function readBody(req, limit = 1024 * 1024) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > limit) {
        reject(new Error('body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function sendJson(res, status, value) {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(body);
}

async function handleTestEndpoint(req, res, pathname) {
  if (pathname === '/__test/stats' && req.method === 'GET') {
    sendJson(res, 200, { ...stats });
    return;
  }
  if (pathname === '/__test/id_token_kid' && req.method === 'PUT') {
    let wanted;
    try {
      wanted = JSON.parse((await readBody(req)).toString('utf8'));
    } catch (err) {
      sendJson(res, 400, { error: `bad request: ${err.message}` });
      return;
    }
    if (!['keep', 'omit', 'replace'].includes(wanted?.mode)
      || (wanted.mode === 'replace' && typeof wanted.kid !== 'string')) {
      sendJson(res, 400, { error: 'mode must be keep, omit or replace (with a kid)' });
      return;
    }
    idTokenKid = wanted;
    res.writeHead(204);
    res.end();
    return;
  }
  const c = /^\/__test\/clients\/([^/]+)$/.exec(pathname);
  if (c && req.method === 'PUT' && providerCallback) {
    let metadata;
    try {
      const body = JSON.parse((await readBody(req)).toString('utf8'));
      metadata = clientMetadata({ ...body, client_id: decodeURIComponent(c[1]) }, 'client');
    } catch (err) {
      sendJson(res, 400, { error: `bad request: ${err.message}` });
      return;
    }
    // Dynamic clients live in the provider's adapter (static ones are fixed at start).
    await provider.Client.adapter.upsert(metadata.client_id, metadata);
    registeredMethods.set(metadata.client_id, metadata.token_endpoint_auth_method);
    res.writeHead(204);
    res.end();
    return;
  }
  const m = /^\/__test\/accounts\/([^/]+)$/.exec(pathname);
  if (m && req.method === 'PUT') {
    let id;
    let claims;
    try {
      id = decodeURIComponent(m[1]);
      claims = JSON.parse((await readBody(req)).toString('utf8'));
    } catch (err) {
      sendJson(res, 400, { error: `bad request: ${err.message}` });
      return;
    }
    if (claims === null || typeof claims !== 'object' || Array.isArray(claims)) {
      sendJson(res, 400, { error: 'body must be a JSON object of claims' });
      return;
    }
    accounts.set(id, claims);
    res.writeHead(204);
    res.end();
    return;
  }
  sendJson(res, 404, { error: 'unknown test endpoint' });
}

const server = http.createServer((req, res) => {
  const pathname = (req.url ?? '/').split('?')[0];
  if (pathname.startsWith('/__test/')) {
    handleTestEndpoint(req, res, pathname).catch((err) => {
      process.stderr.write(`test-idp: test endpoint error: ${err.message}\n`);
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
    });
    return;
  }
  if (!providerCallback) {
    sendJson(res, 503, { error: 'starting' });
    return;
  }
  if (pathname === jwksPath) stats.jwks_fetches += 1;
  if (pathname === tokenPath) stats.token_requests += 1;
  if (pathname === endSessionPath && new URL(req.url, 'http://x').searchParams.has('id_token_hint')) {
    stats.end_session_hints += 1;
  }
  if (pathname === tokenPath && idTokenKid.mode !== 'keep') rewriteIdToken(res);
  if (req.method === 'POST' && pathname === tokenPath) {
    readBody(req, 56 * 1024).then((body) => {
      const form = new URLSearchParams(body.toString('utf8'));
      const presented = presentedAuth(req, form);
      stats.token_auth[presented.method] = (stats.token_auth[presented.method] ?? 0) + 1;
      const registered = registeredMethods.get(presented.clientId);
      if (['client_secret_basic', 'client_secret_post'].includes(registered)
          && ['client_secret_basic', 'client_secret_post'].includes(presented.method)
          && presented.method !== registered) {
        process.stderr.write(`test-idp: token request refused: ${presented.method} for a ${registered} client\n`);
        sendJson(res, 401, {
          error: 'invalid_client',
          error_description: `client authentication failed: the client is registered for ${registered}`,
        });
        return;
      }
      req.body = body; // oidc-provider reads an already consumed body from req.body
      providerCallback(req, res);
    }).catch((err) => {
      process.stderr.write(`test-idp: reading token request: ${err.message}\n`);
      if (!res.headersSent) sendJson(res, 400, { error: 'invalid_request' });
    });
    return;
  }
  if (req.method === 'POST' && /^\/interaction\/[^/]+$/.test(pathname)) {
    // Refuse logins for unknown accounts like a real IdP refuses bad credentials: show the
    // login form again (oidc-provider itself would accept any id and fail later).
    readBody(req, 56 * 1024).then((body) => {
      const form = new URLSearchParams(body.toString('utf8'));
      if (form.get('prompt') === 'login' && !accounts.has(form.get('login') ?? '')) {
        process.stderr.write(`test-idp: login refused: unknown account ${JSON.stringify(form.get('login'))}\n`);
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
        res.end(unknownAccountPage(pathname, form.get('login') ?? ''));
        return;
      }
      req.body = body; // oidc-provider reads an already consumed body from req.body
      providerCallback(req, res);
    }).catch((err) => {
      process.stderr.write(`test-idp: reading interaction form: ${err.message}\n`);
      if (!res.headersSent) sendJson(res, 400, { error: 'bad request' });
    });
    return;
  }
  providerCallback(req, res);
});

// How a token request authenticates the client, and which client it names (never the secret).
function presentedAuth(req, form) {
  const authorization = req.headers.authorization ?? '';
  if (/^basic /i.test(authorization)) {
    let clientId;
    try {
      const decoded = Buffer.from(authorization.slice(6).trim(), 'base64').toString('utf8');
      clientId = decodeURIComponent(decoded.slice(0, decoded.indexOf(':')).replace(/\+/g, '%20'));
    } catch {
      clientId = undefined;
    }
    return { method: 'client_secret_basic', clientId };
  }
  if (form.has('client_secret')) return { method: 'client_secret_post', clientId: form.get('client_id') };
  if (form.has('client_assertion')) return { method: 'private_key_jwt', clientId: form.get('client_id') };
  return { method: 'none', clientId: form.get('client_id') };
}

// Re-signs the ID token of a token response with the same key, its header's kid omitted or
// replaced (PUT /__test/id_token_kid), as providers that sign without kids do.
function rewriteIdToken(res) {
  const end = res.end.bind(res);
  res.end = (chunk, ...rest) => {
    try {
      const body = JSON.parse(Buffer.from(chunk ?? '').toString('utf8'));
      if (typeof body.id_token === 'string') {
        const [h, p] = body.id_token.split('.');
        const header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
        delete header.kid;
        if (idTokenKid.mode === 'replace') header.kid = idTokenKid.kid;
        const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${p}`;
        const sig = crypto.sign('RSA-SHA256', Buffer.from(input), privateKey).toString('base64url');
        body.id_token = `${input}.${sig}`;
        const text = JSON.stringify(body);
        if (!res.headersSent) res.setHeader('content-length', Buffer.byteLength(text));
        return end(text, ...rest.filter((r) => typeof r === 'function'));
      }
    } catch (err) {
      process.stderr.write(`test-idp: id_token rewrite skipped: ${err.message}\n`);
    }
    return end(chunk, ...rest);
  };
}

function htmlEscape(value) {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function unknownAccountPage(action, login) {
  return `<!DOCTYPE html><html><head><title>Sign-in</title></head><body>
<p class="error">unknown account: ${htmlEscape(login)}</p>
<form autocomplete="off" action="${htmlEscape(action)}" method="post">
  <input type="hidden" name="prompt" value="login"/>
  <input required type="text" name="login" placeholder="Enter any login">
  <input required type="password" name="password" placeholder="and password">
  <button type="submit">Sign-in</button>
</form></body></html>`;
}
server.keepAliveTimeout = 5000;

async function listen() {
  // A fixed port (restart on the same port) may still be held for a moment by the previous
  // process: retry EADDRINUSE for up to ~10 s.
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      await new Promise((resolve, reject) => {
        const onError = (err) => { server.off('listening', onListening); reject(err); };
        const onListening = () => { server.off('error', onError); resolve(); };
        server.once('error', onError);
        server.once('listening', onListening);
        server.listen({ host: '127.0.0.1', port: requestedPort, exclusive: true });
      });
      return server.address().port;
    } catch (err) {
      if (err.code === 'EADDRINUSE' && requestedPort !== 0 && Date.now() < deadline) {
        await new Promise((r) => { setTimeout(r, 100); });
        continue;
      }
      throw err;
    }
  }
}

let port;
try {
  port = await listen();
} catch (err) {
  fail(`cannot listen on 127.0.0.1:${requestedPort}: ${err.message}`);
}
const issuer = `http://127.0.0.1:${port}`;

// ---------------------------------------------------------------------------------------------
// Provider
// ---------------------------------------------------------------------------------------------
const kid = crypto.randomBytes(12).toString('base64url');
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingJwk = { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };

const ACCOUNT_HEADER = 'x-test-idp-account';

const policy = interactionPolicy.base();
policy.get('login').checks.add(new interactionPolicy.Check(
  'test_account_switch',
  'the test harness asked for a different account than the current IdP session',
  (ctx) => {
    const wanted = ctx.get(ACCOUNT_HEADER);
    const current = ctx.oidc.session.accountId;
    if (wanted && current && wanted !== current) return interactionPolicy.Check.REQUEST_PROMPT;
    return interactionPolicy.Check.NO_NEED_TO_PROMPT;
  },
));

const SCOPES = ['openid', 'email', 'profile', 'groups'];

const provider = new Provider(issuer, {
  clients,
  jwks: { keys: [signingJwk] },
  cookies: {
    keys: [crypto.randomBytes(32).toString('base64url'), crypto.randomBytes(32).toString('base64url')],
  },
  scopes: SCOPES,
  responseTypes: ['code'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  conformIdTokenClaims: config.conform_id_token_claims === true,
  // Everything in these tests is on 127.0.0.1: let the provider fetch a client's jwks_uri there
  // (its default guard refuses special-use addresses).
  fetch: (url, options) => {
    const { dispatcher: _guard, ...rest } = options;
    return globalThis.fetch(url, rest);
  },
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: true },
    jwtUserinfo: { enabled: config.signed_userinfo === true },
    backchannelLogout: { enabled: true },
  },
  interactions: { policy },
  ttl: {
    AccessToken: 3600,
    AuthorizationCode: 600,
    IdToken: 3600,
    Interaction: 3600,
    Session: 86400,
    Grant: 86400,
  },
  async findAccount(_ctx, id) {
    if (!accounts.has(id)) return undefined;
    return {
      accountId: id,
      // Read the store at claim time so PUT /__test/accounts/<id> is seen by the next token.
      async claims() {
        return { ...(accounts.get(id) ?? {}), sub: id };
      },
    };
  },
  // Pre-grant everything that is asked for, so no consent screen appears.
  async loadExistingGrant(ctx) {
    const { oidc } = ctx;
    const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
    let grant;
    if (grantId) grant = await oidc.provider.Grant.find(grantId);
    if (!grant) {
      grant = new oidc.provider.Grant({ clientId: oidc.client.clientId, accountId: oidc.session.accountId });
    }
    const requested = String(oidc.params.scope ?? '').split(' ').filter((s) => SCOPES.includes(s));
    grant.addOIDCScope([...new Set(['openid', ...requested])].join(' '));
    const requestedClaims = oidc.requestParamClaims ? [...oidc.requestParamClaims] : [];
    if (requestedClaims.length) grant.addOIDCClaims(requestedClaims);
    await grant.save();
    return grant;
  },
  async renderError(ctx, out) {
    // Plain, greppable error page: "error: <code>" / "error_description: <text>".
    ctx.type = 'html';
    ctx.body = `<!DOCTYPE html><html><head><title>test-idp error</title></head><body>
<h1>oops! something went wrong</h1>
${Object.entries(out).map(([k, v]) => `<pre><strong>${htmlEscape(k)}</strong>: ${htmlEscape(v)}</pre>`).join('\n')}
</body></html>`;
  },
});

// Log errors (never request bodies, tokens or secrets).
provider.on('server_error', (_ctx, err) => {
  process.stderr.write(`test-idp: server_error: ${err?.stack ?? err}\n`);
});
for (const event of ['authorization.error', 'grant.error', 'end_session.error', 'userinfo.error']) {
  provider.on(event, (_ctx, err) => {
    process.stderr.write(`test-idp: ${event}: ${err?.error ?? err?.name}: ${err?.error_description ?? err?.message}\n`);
  });
}

provider.on('backchannel.success', () => { stats.backchannel_sent += 1; });
provider.on('backchannel.error', (_ctx, err) => {
  stats.backchannel_failed += 1;
  process.stderr.write(`test-idp: backchannel.error: ${err?.message}\n`);
});

jwksPath = new URL(provider.urlFor('jwks')).pathname;
tokenPath = new URL(provider.urlFor('token')).pathname;
endSessionPath = new URL(provider.urlFor('end_session')).pathname;
providerCallback = provider.callback();

process.stdout.write(`READY ${JSON.stringify({ issuer, port, kid })}\n`);
