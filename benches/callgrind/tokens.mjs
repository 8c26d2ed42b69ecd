// Prints an HS256 and an RS256 token (same claims as benches/verify.rs) for the callgrind runs.
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
