// Verifies a JWT with `jose` (an implementation independent of orgsso's Rust stack) against a
// JWKS URL. Usage: node verify-jwt.mjs <jwks-url> <issuer> <audience> <token>
// Prints the payload as JSON on success; exits 1 with the reason otherwise.
import { createRemoteJWKSet, jwtVerify } from 'jose';

const [jwksUrl, issuer, audience, token] = process.argv.slice(2);
try {
  const jwks = createRemoteJWKSet(new URL(jwksUrl));
  const { payload, protectedHeader } = await jwtVerify(token, jwks, {
    issuer,
    audience,
    typ: 'at+jwt',
    algorithms: ['ES256', 'RS256', 'HS256'],
  });
  process.stdout.write(JSON.stringify({ header: protectedHeader, payload }) + '\n');
} catch (e) {
  process.stderr.write(`${e.code || 'error'}: ${e.message}\n`);
  process.exit(1);
}
