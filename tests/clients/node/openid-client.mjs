// openid-client (v6), unmodified, against the netapi binary: discovery, the authorization code
// flow with PKCE and an RS256 ID token the library verifies (signature against the JWKS and
// claims), UserInfo, refresh, introspection and revocation, and a pushed authorization request (RFC 9126).
//
// Environment: ISSUER (the server's issuer, also its address), CLIENT_ID, CLIENT_SECRET
// (a confidential client registered without id_token_signed_response_alg), REDIRECT_URI,
// EMAIL (the person who signs in). The protocol with the test is in protocol.mjs.
import * as client from 'openid-client';
import { ask, check, done, jwtPart, refused, run } from './protocol.mjs';

const { ISSUER, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, EMAIL } = process.env;
const SCOPE = 'openid profile email users:read';

/** One authorization request through `build` (plain or pushed), approved by the person. */
async function authorize(config, build, label) {
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = await build(config, {
    redirect_uri: REDIRECT_URI,
    scope: SCOPE,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  });
  console.error(`${label}: ${url.href}`);
  const callback = new URL(await ask('AUTHORIZE', url.href));
  return { url, callback, checks: { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true } };
}

/** The checks every ID token of this client must pass, beyond the library's own. */
function checkIdToken(idToken, claims, nonce) {
  check(jwtPart(idToken, 0).alg === 'RS256', `ID token alg RS256, got ${jwtPart(idToken, 0).alg}`);
  check(claims.iss === ISSUER, `iss ${claims.iss}`);
  check(claims.aud === CLIENT_ID || (Array.isArray(claims.aud) && claims.aud.includes(CLIENT_ID)), 'aud is the client');
  check(claims.sub.startsWith('usr_'), `sub ${claims.sub}`);
  check(claims.email === EMAIL, `email ${claims.email}`);
  if (nonce !== undefined) check(claims.nonce === nonce, 'nonce is the one sent');
}

run(async () => {
  // Discovery: the library compares the document's issuer with ISSUER. Plain HTTP on
  // 127.0.0.1 needs the library's allowInsecureRequests.
  const config = await client.discovery(
    new URL(ISSUER),
    CLIENT_ID,
    {},
    client.ClientSecretBasic(CLIENT_SECRET),
    { execute: [client.allowInsecureRequests] },
  );
  // Verify ID token signatures with the keys of jwks_uri, not only their claims.
  client.enableNonRepudiationChecks(config);
  const metadata = config.serverMetadata();
  check(metadata.issuer === ISSUER, 'discovered issuer');
  check(metadata.supportsPKCE(), 'S256 PKCE advertised');
  check(metadata.id_token_signing_alg_values_supported.includes('RS256'), 'RS256 ID tokens advertised');
  check(metadata.pushed_authorization_request_endpoint === `${ISSUER}/oauth/par`, 'PAR endpoint');

  // 1. Authorization code + PKCE.
  const first = await authorize(config, async (c, p) => client.buildAuthorizationUrl(c, p), 'code flow');
  check(first.callback.searchParams.get('iss') === ISSUER, 'iss in the authorization response (RFC 9207)');
  const tokens = await client.authorizationCodeGrant(config, first.callback, first.checks);
  check(tokens.token_type === 'bearer', `token_type ${tokens.token_type}`);
  check(typeof tokens.refresh_token === 'string', 'a refresh token');
  const claims = tokens.claims();
  checkIdToken(tokens.id_token, claims, first.checks.expectedNonce);

  // UserInfo: the library checks that its sub is the ID token's.
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  check(userinfo.email === EMAIL, `userinfo email ${userinfo.email}`);
  check(typeof userinfo.name === 'string', 'userinfo name (profile)');

  // Refresh: a new refresh token (rotation) and a new ID token for the same person.
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  check(refreshed.refresh_token && refreshed.refresh_token !== tokens.refresh_token, 'refresh token rotated');
  check(refreshed.access_token !== tokens.access_token, 'new access token');
  const refreshedClaims = refreshed.claims();
  checkIdToken(refreshed.id_token, refreshedClaims, undefined);
  check(refreshedClaims.sub === claims.sub, 'same sub after refresh');
  const again = await client.fetchUserInfo(config, refreshed.access_token, claims.sub);
  check(again.sub === claims.sub, 'userinfo with the refreshed token');

  // Introspection (RFC 7662) and revocation (RFC 7009) with the same client authentication.
  const active = await client.tokenIntrospection(config, refreshed.access_token);
  check(active.active === true && active.sub === claims.sub && active.client_id === CLIENT_ID, 'introspection');
  await client.tokenRevocation(config, refreshed.refresh_token);
  const revoked = await refused(() => client.refreshTokenGrant(config, refreshed.refresh_token), 'a revoked refresh token');
  check(revoked.error === 'invalid_grant', `revoked refresh token: ${revoked.error ?? revoked.message}`);

  // 2. A pushed authorization request: the browser's URL carries only client_id and request_uri.
  const pushed = await authorize(config, client.buildAuthorizationUrlWithPAR, 'PAR');
  check(
    [...pushed.url.searchParams.keys()].sort().join(' ') === 'client_id request_uri',
    `PAR URL parameters: ${pushed.url.search}`,
  );
  check(pushed.url.searchParams.get('request_uri').startsWith('urn:ietf:params:oauth:request_uri:'), 'request_uri');
  const parTokens = await client.authorizationCodeGrant(config, pushed.callback, pushed.checks);
  checkIdToken(parTokens.id_token, parTokens.claims(), pushed.checks.expectedNonce);
  check(parTokens.claims().sub === claims.sub, 'same person through PAR');

  // 3. The library really checks the ID token: another nonce than the one sent is refused...
  const wrongNonce = await authorize(config, async (c, p) => client.buildAuthorizationUrl(c, p), 'nonce check');
  const nonceError = await refused(
    () => client.authorizationCodeGrant(config, wrongNonce.callback, { ...wrongNonce.checks, expectedNonce: client.randomNonce() }),
    'an ID token with another nonce',
  );
  check(nonceError.code === 'OAUTH_JWT_CLAIM_COMPARISON_FAILED', `nonce error: ${nonceError.code} ${nonceError.message}`);

  // ...and so is one whose signature does not verify with the server's keys (the token
  // response is changed on its way in, through the library's customFetch option).
  const tampered = await authorize(config, async (c, p) => client.buildAuthorizationUrl(c, p), 'signature check');
  config[client.customFetch] = async (url, options) => {
    const response = await fetch(url, options);
    if (!url.endsWith('/oauth/token')) return response;
    const body = await response.json();
    const [header, payload, signature] = body.id_token.split('.');
    const flipped = signature[10] === 'A' ? 'B' : 'A';
    body.id_token = [header, payload, signature.slice(0, 10) + flipped + signature.slice(11)].join('.');
    return new Response(JSON.stringify(body), {
      status: response.status,
      headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
    });
  };
  const signatureError = await refused(
    () => client.authorizationCodeGrant(config, tampered.callback, tampered.checks),
    'an ID token with a bad signature',
  );
  check(/signature/i.test(`${signatureError.message} ${signatureError.cause?.message}`), `signature error: ${signatureError.message}`);

  done({
    sub: claims.sub,
    id_token_alg: jwtPart(tokens.id_token, 0).alg,
    email: userinfo.email,
    refreshed: true,
    par: true,
    nonce_error: nonceError.code,
    signature_error: signatureError.cause?.message ?? signatureError.message,
  });
});
