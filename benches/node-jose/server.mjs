// The reference a hand-written Node service would be: node:http + `jose`, verifying RS256 bearer
// tokens against one public key with the claim checks orgsso applies to the bench org's rs256
// secret (signature, `exp` required and not past, `nbf`/`iat` not in the future, 60 s leeway;
// `iss`/`aud` only when given). Answers 200 or 401 like orgsso's verify endpoint.
//
// Usage: node server.mjs PORT SPKI_PEM_FILE [WORKERS] [ISSUER] [AUDIENCE]
// WORKERS > 1 forks that many node:cluster workers sharing the port (Node is single-threaded).
import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { importSPKI, jwtVerify } from 'jose';

const [port, pemFile, workersArg, issuer, audience] = process.argv.slice(2);
const workers = Number(workersArg || 1);

if (workers > 1 && cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
} else {
  const key = await importSPKI(readFileSync(pemFile, 'utf8'), 'RS256');
  const options = {
    algorithms: ['RS256'],
    requiredClaims: ['exp'],
    clockTolerance: 60,
    ...(issuer ? { issuer } : {}),
    ...(audience ? { audience } : {}),
  };
  const refuse = (res) => {
    res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"' });
    res.end();
  };
  http
    .createServer(async (req, res) => {
      const auth = req.headers.authorization;
      if (!auth || !auth.startsWith('Bearer ')) return refuse(res);
      try {
        const { payload } = await jwtVerify(auth.slice(7), key, options);
        res.writeHead(200, { 'x-auth-subject': String(payload.sub ?? '') });
        res.end();
      } catch {
        refuse(res);
      }
    })
    .listen(Number(port), '127.0.0.1');
}
