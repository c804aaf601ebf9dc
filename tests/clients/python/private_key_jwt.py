"""private_key_jwt client authentication (RFC 7523 §2.2) with Authlib's PrivateKeyJWT against
a running Net API: client credentials at /oauth/token, then revocation and introspection
authenticated the same way; a replayed assertion and a key the client does not hold are
refused.

Environment: BASE (the server's address, also its issuer), USER_KEY (a user's API key with
clients:write, to register the client at /oauth/register).
"""

import secrets
import time

from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc.jwk import ECKey, RSAKey

from common import (
    INTROSPECT_URL,
    REGISTER_URL,
    REVOKE_URL,
    TOKEN_URL,
    StatusRecorder,
    check,
    env,
    equal,
    json_of,
    main,
    oauth_error,
)
import requests


def assertion_auth(alg, claims=None, kid=None):
    """Authlib's PrivateKeyJWT, its assertion living two minutes: Authlib's default is an
    hour, and Net API accepts at most five minutes (see the check below). A new one for each
    request, because Authlib writes the `jti` it draws into the `claims` dict it is given and
    would send that `jti` again."""
    claims = dict(claims or {})
    claims.setdefault("exp", int(time.time()) + 120)
    return PrivateKeyJWT(claims=claims, alg=alg, headers={"kid": kid} if kid else None)


def session_for(client_id, private_key):
    return OAuth2Session(
        client_id,
        private_key,
        token_endpoint_auth_method="private_key_jwt",
        revocation_endpoint_auth_method="private_key_jwt",
    )


def run():
    user_key = env("USER_KEY")
    rsa_key = RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "use": "sig"})
    ec_key = ECKey.generate_key("P-256", parameters={"kid": "ec-1", "use": "sig"})
    jwks = {"keys": [rsa_key.as_dict(private=False), ec_key.as_dict(private=False)]}
    check(all("d" not in key for key in jwks["keys"]), "the registered set holds no private part")

    registered = json_of(
        requests.post(
            REGISTER_URL,
            headers={"Authorization": f"Bearer {user_key}"},
            json={
                "client_name": "Authlib private_key_jwt service",
                "grant_types": ["client_credentials"],
                "scope": "users:read",
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": jwks,
            },
        ),
        201,
        "registering the private_key_jwt client",
    )
    client_id = registered["client_id"]
    equal(registered["token_endpoint_auth_method"], "private_key_jwt", "registered method")
    check(registered.get("client_secret") is None, "a private_key_jwt client got a secret")

    # Client credentials, RS256: the assertion's aud is the endpoint it is sent to, here the
    # token endpoint; its header names the key.
    service = session_for(client_id, rsa_key)
    service.register_client_auth_method(assertion_auth("RS256", kid="rsa-1"))
    token = service.fetch_token(TOKEN_URL, grant_type="client_credentials")
    equal(token["token_type"], "Bearer", "token_type")
    equal(token["scope"], "users:read", "scope of the client-credentials token")
    access_token = token["access_token"]

    # Introspection with the same authentication (Authlib's introspect_token uses the token
    # endpoint's method; the assertion's aud is the introspection endpoint it is sent to).
    service.register_client_auth_method(assertion_auth("RS256"))
    introspected = json_of(
        service.introspect_token(INTROSPECT_URL, token=access_token), 200, "introspection"
    )
    equal(introspected["active"], True, "the new token is active")
    equal(introspected["client_id"], client_id, "introspected client_id")
    equal(introspected["scope"], "users:read", "introspected scope")

    # ES256 with the other registered key works too, without a kid (Authlib sends none).
    service_ec = session_for(client_id, ec_key)
    service_ec.register_client_auth_method(assertion_auth("ES256"))
    ec_token = service_ec.fetch_token(TOKEN_URL, grant_type="client_credentials")
    equal(ec_token["scope"], "users:read", "scope of the ES256-authenticated token")

    # Revocation: Authlib's revoke_token, the assertion's aud being the revocation endpoint.
    service.register_client_auth_method(assertion_auth("RS256"))
    revoked = service.revoke_token(REVOKE_URL, token=access_token, token_type_hint="access_token")
    equal(revoked.status_code, 200, "revocation status")
    service.register_client_auth_method(assertion_auth("RS256"))
    after = json_of(
        service.introspect_token(INTROSPECT_URL, token=access_token), 200, "introspection"
    )
    equal(after, {"active": False}, "the revoked token introspected")

    # A replayed assertion: the same jti a second time is refused.
    jti = secrets.token_urlsafe(24)
    replay_claims = {"exp": int(time.time()) + 120, "jti": jti}
    replaying = session_for(client_id, rsa_key)
    status = StatusRecorder(replaying)
    replaying.register_client_auth_method(PrivateKeyJWT(claims=dict(replay_claims)))
    first = replaying.fetch_token(TOKEN_URL, grant_type="client_credentials")
    check("access_token" in first, "the first use of the assertion works")
    replaying.register_client_auth_method(PrivateKeyJWT(claims=dict(replay_claims)))
    error = oauth_error(
        lambda: replaying.fetch_token(TOKEN_URL, grant_type="client_credentials"),
        "a replayed assertion",
    )
    equal(error, "invalid_client", "a replayed assertion")
    # RFC 6749 §5.2: 401 is required only after an Authorization header; Net API answers
    # 400 to an assertion in the body.
    equal(status.last, 400, "status of a replayed assertion")
    # ... also at the revocation endpoint, and a third time at the token endpoint.
    replaying.register_client_auth_method(PrivateKeyJWT(claims=dict(replay_claims)))
    refused_revocation = replaying.revoke_token(REVOKE_URL, token=first["access_token"])
    equal(refused_revocation.status_code, 400, "a replayed assertion at the revocation endpoint")
    equal(refused_revocation.json().get("error"), "invalid_client", "its error")

    # A key the client does not hold, even naming a registered kid: refused.
    stranger_key = RSAKey.generate_key(2048)
    stranger = session_for(client_id, stranger_key)
    status = StatusRecorder(stranger)
    stranger.register_client_auth_method(assertion_auth("RS256", kid="rsa-1"))
    error = oauth_error(
        lambda: stranger.fetch_token(TOKEN_URL, grant_type="client_credentials"),
        "an assertion signed with another key",
    )
    equal(error, "invalid_client", "an assertion signed with another key")
    equal(status.last, 400, "status of an assertion signed with another key")
    stranger.register_client_auth_method(assertion_auth("RS256"))  # no kid: every key tried
    refused_introspection = stranger.introspect_token(INTROSPECT_URL, token=ec_token["access_token"])
    equal(refused_introspection.status_code, 400, "introspection with another key")
    equal(refused_introspection.json().get("error"), "invalid_client", "its error")

    # Authlib's default assertion lives an hour: longer than Net API's five minutes, so it is
    # refused (docs/oauth.md says so and shows the claims above).
    defaults = session_for(client_id, rsa_key)
    defaults.register_client_auth_method(PrivateKeyJWT(TOKEN_URL))
    error = oauth_error(
        lambda: defaults.fetch_token(TOKEN_URL, grant_type="client_credentials"),
        "Authlib's default one-hour assertion",
    )
    equal(error, "invalid_client", "Authlib's default one-hour assertion")


if __name__ == "__main__":
    main(run, "authlib private_key_jwt")
