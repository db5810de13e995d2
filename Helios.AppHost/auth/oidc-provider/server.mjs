// The SMART Backend Services authorization server of Helios's local mode (tests, and the AppHost where no container
// runtime exists): oidc-provider with the client_credentials grant, private_key_jwt client authentication (RS384 or
// ES384 assertions, replayed or expired ones refused) and JWT access tokens whose `scope` claim holds the SMART
// scopes granted. The Keycloak realm in ../keycloak describes the same clients for the container mode.
//
//   node server.mjs <config.json>
//
// config.json: { "issuer": "http://127.0.0.1:4400", "audience": "helios", "accessTokenTtlSeconds": 300,
//                "clients": [ { "client_id": "...", "jwks": { "keys": [...] } | "jwks_uri": "https://...",
//                               "scopes": ["system/*.rs", "system/*.read", ...] } ],
//                "devClient": { "client_id": "helios-dev", "directory": "..." },   (optional)
//                "resources": [ { "indicator": "urn:...", "audience": "...", "ttl": 60 } ],   (optional: more audiences)
//                "ownerPid": 1234 }                                                (optional: exit when that process ends)
// The environment's HELIOS_AUTH_ISSUER replaces "issuer" and PORT the port it listens on (the AppHost allocates it).
// A client may request any SMART scope its `scopes` cover (v1 read/write/*, v2 c r u d s, with or without a
// `?param=value` constraint); the token carries exactly the requested scopes that are covered, and a request
// none of whose scopes is covered gets invalid_scope.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Provider, { errors } from 'oidc-provider';

const configPath = process.argv[2];
if (!configPath) {
  console.error('usage: node server.mjs <config.json>');
  process.exit(2);
}

const config = JSON.parse(readFileSync(configPath, 'utf8'));
// The AppHost gives the issuer and port through the environment (the port is allocated at run time).
const issuer = new URL(process.env.HELIOS_AUTH_ISSUER ?? config.issuer);
const audience = config.audience ?? 'helios';
const ttl = config.accessTokenTtlSeconds ?? 300;
const clients = [...(config.clients ?? [])];

// A development client whose key pair is made on first run and kept (never committed) in its directory: the
// private key for getting tokens, the public JWKS registered here.
if (config.devClient) {
  const { client_id: clientId, directory } = config.devClient;
  mkdirSync(directory, { recursive: true });
  const privatePath = join(directory, `${clientId}.private.pem`);
  const publicPath = join(directory, `${clientId}.jwks.json`);
  if (!existsSync(privatePath) || !existsSync(publicPath)) {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(privatePath, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    const jwk = { ...publicKey.export({ format: 'jwk' }), kid: `${clientId}-${randomUUID().slice(0, 8)}`, alg: 'RS384', use: 'sig' };
    writeFileSync(publicPath, JSON.stringify({ keys: [jwk] }, null, 2));
  }

  clients.push({ client_id: clientId, jwks: JSON.parse(readFileSync(publicPath, 'utf8')), scopes: config.devClient.scopes ?? ['system/*.cruds', 'system/*.*'] });
}

// ---- SMART scopes (v1 and v2) --------------------------------------------------------------------------------------
const V1 = { read: 'rs', write: 'cud', '*': 'cruds' };
function parseScope(text) {
  const match = /^(system|user|patient)\/([A-Za-z]+|\*)\.([a-z*]+)(\?.*)?$/.exec(text);
  if (!match) return null;
  const [, context, type, perms, query] = match;
  let letters = V1[perms];
  if (!letters) {
    if (!/^c?r?u?d?s?$/.test(perms) || perms.length === 0) return null;
    letters = perms;
  }
  return { context, type, letters: new Set(letters), query: query ?? '' };
}

function covers(allowed, requested) {
  return allowed.context === requested.context
    && (allowed.type === '*' || allowed.type === requested.type)
    && [...requested.letters].every((l) => allowed.letters.has(l))
    && (allowed.query === '' || allowed.query === requested.query);
}

const allowedByClient = new Map(clients.map((c) => [c.client_id, (c.scopes ?? []).map(parseScope).filter(Boolean)]));

function grantedScopes(clientId, requested) {
  const allowed = allowedByClient.get(clientId) ?? [];
  return requested.filter((text) => {
    const scope = parseScope(text);
    return scope !== null && allowed.some((a) => covers(a, scope));
  });
}

// ---- the provider --------------------------------------------------------------------------------------------------
const { privateKey: signingKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingJwk = { ...signingKey.export({ format: 'jwk' }), kid: `helios-as-${randomUUID().slice(0, 8)}`, alg: 'RS256', use: 'sig' };
// Resource servers tokens can be asked for (RFC 8707 `resource`); the first is the default. Tests add others (another
// audience, a short lifetime) to get tokens Helios must refuse.
const resources = new Map([[`urn:helios:${audience}`, { audience, ttl }]]);
for (const extra of config.resources ?? []) {
  resources.set(extra.indicator, { audience: extra.audience, ttl: extra.ttl ?? ttl });
}
const defaultResource = resources.keys().next().value;

const provider = new Provider(issuer.href.replace(/\/$/, ''), {
  clients: clients.map((c) => ({
    client_id: c.client_id,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'private_key_jwt',
    ...(c.jwks_uri ? { jwks_uri: c.jwks_uri } : { jwks: c.jwks }),
  })),
  jwks: { keys: [signingJwk] },
  // Advertised in discovery (scopes_supported); any SMART scope a client's registration covers is granted, listed here or not.
  scopes: ['system/*.rs', 'system/*.read', 'system/*.cruds', 'system/*.write', 'system/*.*'],
  clientAuthMethods: ['private_key_jwt'],
  enabledJWA: { clientAuthSigningAlgValues: ['RS384', 'ES384'] },
  clockTolerance: 5,
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: false },
    revocation: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => defaultResource,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, indicator, client) => {
        const server = resources.get(indicator);
        if (!server) {
          throw new errors.InvalidTarget(`unknown resource ${indicator}`);
        }
        const requested = (ctx.oidc.params.scope ?? '').split(' ').filter(Boolean);
        const granted = grantedScopes(client.clientId, requested);
        if (granted.length === 0) {
          throw new errors.InvalidScope(requested.length === 0
            ? 'a SMART scope is required, e.g. system/*.rs'
            : `none of the requested scopes is granted to this client: ${requested.join(' ')}`);
        }
        return {
          scope: granted.join(' '),
          audience: server.audience,
          accessTokenTTL: server.ttl,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  extraTokenClaims: (ctx, token) => ({ client_id: token.clientId }),
  // SMART Backend Services: sub equals iss (the client id), and the assertion expires at most five minutes ahead.
  assertJwtClientAuthClaimsAndHeader: async (ctx, claims) => {
    if (claims.sub !== claims.iss) {
      throw new errors.InvalidClientAuth('sub (JWT subject) must be the client_id, as iss is');
    }
    if (claims.exp > Date.now() / 1000 + 300 + 5) {
      throw new errors.InvalidClientAuth('the client assertion must expire at most five minutes from now');
    }
  },
});

// Tests pass their process id: the server ends with them, however they end.
if (config.ownerPid) {
  setInterval(() => {
    try {
      process.kill(config.ownerPid, 0);
    } catch (error) {
      if (error.code !== 'EPERM') process.exit(0);
    }
  }, 1000).unref();
}

const port = Number(process.env.PORT ?? (issuer.port || (issuer.protocol === 'https:' ? 443 : 80)));
provider.listen(port, issuer.hostname, () => {
  console.log(`helios authorization server: ${issuer.href} (audience ${audience}, ${clients.length} clients)`);
});
