// Gets an access token with a SMART Backend Services client assertion (private_key_jwt, RS384) and prints the token
// response. For trying Helios by hand, e.g. with the development client the local server makes on first run:
//   node token.mjs http://127.0.0.1:4400/token helios-dev <dir>/helios-dev.private.pem <dir>/helios-dev.jwks.json "system/*.rs"
import { createPrivateKey, createSign, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

const [tokenUrl, clientId, privateKeyPath, jwksPath, scope = 'system/*.rs'] = process.argv.slice(2);
if (!tokenUrl || !clientId || !privateKeyPath || !jwksPath) {
  console.error('usage: node token.mjs <token_url> <client_id> <private.pem> <jwks.json> [scope]');
  process.exit(2);
}

const kid = JSON.parse(readFileSync(jwksPath, 'utf8')).keys[0].kid;
const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
const now = Math.floor(Date.now() / 1000);
const signingInput = `${b64({ alg: 'RS384', kid, typ: 'JWT' })}.${b64({ iss: clientId, sub: clientId, aud: tokenUrl, exp: now + 300, jti: randomBytes(32).toString('hex') })}`;
const signature = createSign('RSA-SHA384').update(signingInput).sign(createPrivateKey(readFileSync(privateKeyPath))).toString('base64url');

const response = await fetch(tokenUrl, {
  method: 'POST',
  headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
  body: new URLSearchParams({
    grant_type: 'client_credentials',
    scope,
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: `${signingInput}.${signature}`,
  }),
});
console.log(await response.text());
process.exitCode = response.ok ? 0 : 1;
