// Prints an HS256 and an RS256 token (same claims as benches/verify.rs) for the callgrind runs;
// with a count as third argument, then that many distinct RS256 tokens (own `sub` and `jti`),
// each to be sent once (the new-token path: no verdict cache hit).
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
const b64 = (b) => Buffer.from(b).toString('base64url');
const now = Math.floor(Date.now() / 1000);
const claims = { sub: 'svc', email: 'svc@example.com', role: 'developer', exp: now + 3600 };
const body = (alg) => `${b64(JSON.stringify({ alg, typ: 'JWT' }))}.${b64(JSON.stringify(claims))}`;
const hs = body('HS256');
const hsSig = crypto.createHmac('sha256', process.argv[2]).update(hs).digest();
const rs = body('RS256');
const rsSig = crypto.sign('sha256', Buffer.from(rs), fs.readFileSync(process.argv[3]));
console.log(`${hs}.${b64(hsSig)}`);
console.log(`${rs}.${b64(rsSig)}`);
const count = Number(process.argv[4] ?? 0);
for (let i = 0; i < count; i++) {
  const c = { ...claims, sub: `svc-${i}`, jti: `cg-${i}` };
  const m = `${b64(JSON.stringify({ alg: 'RS256', typ: 'JWT' }))}.${b64(JSON.stringify(c))}`;
  console.log(`${m}.${b64(crypto.sign('sha256', Buffer.from(m), fs.readFileSync(process.argv[3])))}`);
}
