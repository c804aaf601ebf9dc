// oauth4webapi, unmodified, against the netapi binary: the device authorization grant
// (RFC 8628) with DPoP-bound tokens (RFC 9449), a protected resource request to /v1/users/me
// with the library's helper, refresh with DPoP, and the server's DPoP nonces when it asks
// for them. The bound token sent as a plain bearer token must be refused.
//
// Environment: ISSUER (the server's issuer, also its address), CLIENT_ID (a public client
// with the device_code and refresh_token grants), EMAIL (the person who approves),
// EXPECT_NONCE (`1` when the server runs with require_dpop_nonce). The protocol with the test
// is in protocol.mjs.
import * as oauth from 'oauth4webapi';
import { ask, check, done, jwtPart, refused, run } from './protocol.mjs';

const { ISSUER, CLIENT_ID, EMAIL, EXPECT_NONCE } = process.env;
// Plain HTTP on 127.0.0.1 needs the library's allowInsecureRequests.
const http = { [oauth.allowInsecureRequests]: true };
const me = new URL('/v1/users/me', ISSUER);

let nonceChallenges = 0;

/** Runs `step` and, when the server asks for a DPoP nonce, once more: the handle has kept the
 *  nonce from the answer (the retry the library documents for `isDPoPNonceError`). */
async function withNonce(step) {
  try {
    return await step();
  } catch (error) {
    if (!oauth.isDPoPNonceError(error)) throw error;
    nonceChallenges += 1;
    return step();
  }
}

const sleep = (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));

run(async () => {
  const issuer = new URL(ISSUER);
  const as = await oauth.processDiscoveryResponse(
    issuer,
    await oauth.discoveryRequest(issuer, { ...http, algorithm: 'oidc' }),
  );
  check(as.dpop_signing_alg_values_supported.includes('ES256'), 'ES256 DPoP proofs advertised');
  check(as.device_authorization_endpoint === `${ISSUER}/oauth/device_authorization`, 'device endpoint');
  const client = { client_id: CLIENT_ID };
  const auth = oauth.None();
  const keys = await oauth.generateKeyPair('ES256');
  const DPoP = oauth.DPoP(client, keys);

  // 1. Device authorization.
  const grant = await oauth.processDeviceAuthorizationResponse(
    as,
    client,
    await oauth.deviceAuthorizationRequest(as, client, auth, { scope: 'openid users:read' }, http),
  );
  check(grant.verification_uri === `${ISSUER}/device`, `verification_uri ${grant.verification_uri}`);
  check(grant.verification_uri_complete.includes(encodeURIComponent(grant.user_code)) ||
    grant.verification_uri_complete.includes(grant.user_code), 'verification_uri_complete');
  let interval = grant.interval ?? 5;

  const poll = () => withNonce(async () => oauth.processDeviceCodeResponse(
    as,
    client,
    await oauth.deviceCodeGrantRequest(as, client, auth, grant.device_code, { ...http, DPoP }),
  ));

  // Before anyone approves: authorization_pending.
  const pending = await refused(poll, 'a device code nobody approved');
  check(pending instanceof oauth.ResponseBodyError && pending.error === 'authorization_pending',
    `first poll: ${pending.error ?? pending.message}`);

  const answer = await ask('USER_CODE', grant.user_code);
  check(answer === 'APPROVED', `the test answered ${answer}`);

  // Poll at the interval, as RFC 8628 §3.5 says, until the tokens come.
  let tokens;
  for (let polls = 0; !tokens; polls += 1) {
    check(polls < 5, 'tokens within five polls');
    await sleep(interval);
    try {
      tokens = await poll();
    } catch (error) {
      if (!(error instanceof oauth.ResponseBodyError)) throw error;
      if (error.error === 'slow_down') interval += 5;
      else if (error.error !== 'authorization_pending') throw error;
    }
  }
  check(tokens.token_type === 'dpop', `token_type ${tokens.token_type}`);
  const jkt = await DPoP.calculateThumbprint();
  check(jwtPart(tokens.access_token, 1).cnf?.jkt === jkt, 'the access token is bound to our key');
  // The ID token (RS256, the library's default expectation) was validated by the library.
  const idClaims = oauth.getValidatedIdTokenClaims(tokens);
  check(idClaims?.aud === CLIENT_ID || idClaims?.aud?.includes?.(CLIENT_ID), 'ID token for this client');

  // 2. The protected resource with Authorization: DPoP and a proof, through the library.
  const get = (token, options) => withNonce(() => oauth.protectedResourceRequest(token, 'GET', me, undefined, undefined, options));
  const response = await get(tokens.access_token, { ...http, DPoP });
  check(response.status === 200, `GET /v1/users/me: ${response.status}`);
  const user = await response.json();
  check(user.email === EMAIL, `email ${user.email}`);
  check(user.id === idClaims.sub, 'the ID token names the same user');
  // A client restarted with the same key has no nonce yet: with require_dpop_nonce, /v1 asks
  // for one (401, WWW-Authenticate: DPoP error="use_dpop_nonce", DPoP-Nonce) and the retry passes.
  const challengesBefore = nonceChallenges;
  const restarted = await get(tokens.access_token, { ...http, DPoP: oauth.DPoP(client, keys) });
  check(restarted.status === 200, `GET /v1/users/me from a new handle: ${restarted.status}`);
  const resourceNonce = nonceChallenges > challengesBefore;
  check(resourceNonce === (EXPECT_NONCE === '1'), `/v1 asked for a nonce: ${resourceNonce}`);

  // The same token as a plain bearer token: refused, the challenge says why.
  const bearer = await refused(
    () => oauth.protectedResourceRequest(tokens.access_token, 'GET', me, undefined, undefined, http),
    'the DPoP-bound token sent as Bearer',
  );
  check(bearer instanceof oauth.WWWAuthenticateChallengeError, `bearer refusal: ${bearer.message}`);
  check(bearer.response.status === 401, `bearer refusal status ${bearer.response.status}`);
  const challenge = bearer.cause.find((c) => c.scheme === 'dpop');
  check(challenge?.parameters.error === 'invalid_token', `bearer refusal challenge ${JSON.stringify(bearer.cause)}`);

  // 3. Refresh. The public client's refresh token is bound too: without a proof, or with
  // another key's, it is refused; with ours it rotates and the new access token is bound.
  const refresh = (options) => withNonce(async () => oauth.processRefreshTokenResponse(
    as,
    client,
    await oauth.refreshTokenGrantRequest(as, client, auth, tokens.refresh_token, options),
  ));
  const unproven = await refused(() => refresh(http), 'a refresh without a proof');
  check(unproven.error === 'invalid_dpop_proof', `refresh without proof: ${unproven.error ?? unproven.message}`);
  const otherKey = oauth.DPoP(client, await oauth.generateKeyPair('ES256'));
  const stranger = await refused(() => refresh({ ...http, DPoP: otherKey }), "a refresh with another key's proof");
  check(stranger.error === 'invalid_dpop_proof', `refresh with another key: ${stranger.error ?? stranger.message}`);
  const refreshed = await refresh({ ...http, DPoP });
  check(refreshed.token_type === 'dpop', `refreshed token_type ${refreshed.token_type}`);
  check(refreshed.refresh_token && refreshed.refresh_token !== tokens.refresh_token, 'refresh token rotated');
  check(jwtPart(refreshed.access_token, 1).cnf?.jkt === jkt, 'the refreshed token is bound to our key');
  const after = await get(refreshed.access_token, { ...http, DPoP });
  check(after.status === 200, `GET /v1/users/me after refresh: ${after.status}`);

  if (EXPECT_NONCE === '1') check(nonceChallenges > 0, 'the server asked for a nonce');
  else check(nonceChallenges === 0, 'no nonce asked for');
  done({
    token_type: tokens.token_type,
    jkt,
    user: user.id,
    nonce_challenges: nonceChallenges,
    resource_nonce: resourceNonce,
    bearer_error: challenge.parameters.error,
  });
});
