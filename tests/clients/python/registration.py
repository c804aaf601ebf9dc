"""Dynamic client registration (RFC 7591) and its management protocol (RFC 7592) against a
running Net API, then Authlib's OAuth2Session with the registered client.

Authlib has the server side of RFC 7591/7592 only (authlib.oauth2.rfc7591 and rfc7592 are
endpoints for an authorization server), no client-side helper: the registration calls are
plain `requests`, as a client application would make them.

Environment: BASE (the server's address, also its issuer); MODE, the server's
`client_registration`: `authenticated` (the default; USER_KEY is a user's API key with
clients:write), `admin` (INITIAL_TOKEN is an initial access token, good for one
registration) or `open` (no credential).
"""

import os
import secrets

import requests
from authlib.integrations.requests_client import OAuth2Session

from common import (
    BASE,
    INTROSPECT_URL,
    REGISTER_URL,
    TOKEN_URL,
    check,
    env,
    equal,
    json_of,
    main,
    oauth_error,
)


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def run():
    mode = os.environ.get("MODE", "authenticated")
    if mode == "authenticated":
        run_authenticated()
    elif mode in ("admin", "open"):
        run_without_owner(mode)
    else:
        check(False, f"unknown MODE {mode!r}")


def run_without_owner(mode):
    """`client_registration = admin` or `open`: the client has no owner; it may use the
    authorization endpoint, never client_credentials."""
    metadata = {
        "client_name": f"Authlib client registered in {mode} mode",
        "redirect_uris": ["http://127.0.0.1/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "client_secret_post",
        "scope": "openid users:read",
        "logo_uri": "https://app.example.com/logo.png",
        "x_vendor_extension": True,
    }
    headers = {}
    if mode == "admin":
        initial_token = env("INITIAL_TOKEN")
        anonymous = requests.post(REGISTER_URL, json=metadata)
        equal(anonymous.status_code, 401, "admin mode: registration without a token")
        equal(anonymous.json().get("error"), "invalid_token", "its error")
        headers = bearer(initial_token)
    else:
        # No owner, so no client_credentials (RFC 7591 §3.2.2 invalid_client_metadata).
        refused = requests.post(
            REGISTER_URL,
            json={**metadata, "grant_types": ["client_credentials"]},
        )
        equal(refused.status_code, 400, "open mode: client_credentials for a client without owner")
        equal(refused.json().get("error"), "invalid_client_metadata", "its error")

    registered = json_of(
        requests.post(REGISTER_URL, headers=headers, json=metadata), 201, f"{mode} registration"
    )
    client_id = registered["client_id"]
    equal(registered["logo_uri"], metadata["logo_uri"], "registered logo_uri")
    check("x_vendor_extension" not in registered, "unknown metadata is not echoed")
    if mode == "admin":
        again = requests.post(REGISTER_URL, headers=headers, json=metadata)
        equal(again.status_code, 401, "an initial access token used a second time")
        equal(again.json().get("error"), "invalid_token", "its error")

    registration_uri = registered["registration_client_uri"]
    registration_token = registered["registration_access_token"]
    read = json_of(
        requests.get(registration_uri, headers=bearer(registration_token)), 200, "reading"
    )
    equal(read["client_id"], client_id, "read client_id")

    # Authlib builds the authorization request (PKCE S256); the server knows the client and
    # shows its sign-in page.
    session = OAuth2Session(
        client_id,
        registered["client_secret"],
        token_endpoint_auth_method="client_secret_post",
        redirect_uri=metadata["redirect_uris"][0],
        scope="openid users:read",
        code_challenge_method="S256",
    )
    authorize_url, _state = session.create_authorization_url(
        f"{BASE}/oauth/authorize", code_verifier=secrets.token_urlsafe(48)
    )
    login = requests.get(authorize_url)
    equal(login.status_code, 200, "the authorization request of the registered client")
    check('name="password"' in login.text, "the authorization request shows the sign-in page")

    # Without owner, client_credentials is refused.
    error = oauth_error(
        lambda: session.fetch_token(TOKEN_URL, grant_type="client_credentials"),
        "client_credentials for a client without owner",
    )
    equal(error, "unauthorized_client", "client_credentials for a client without owner")

    deleted = requests.delete(registration_uri, headers=bearer(registration_token))
    equal(deleted.status_code, 204, "deleting")
    gone = requests.get(authorize_url)
    equal(gone.status_code, 400, "the authorization request of a deleted client")


def run_authenticated():
    user_key = env("USER_KEY")
    metadata = {
        "client_name": "Authlib registered client",
        "redirect_uris": ["http://127.0.0.1/callback", "https://app.example.com/callback"],
        "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": "users:read keys:read",
        "logo_uri": "https://app.example.com/logo.png",
        "client_uri": "https://app.example.com/",
        "policy_uri": "https://app.example.com/privacy",
        "tos_uri": "https://app.example.com/terms",
        "contacts": ["ops@app.example.com"],
        "software_id": "authlib-registration-test",
        "software_version": "1.0",
        # RFC 7591 §2: metadata the server does not understand is ignored.
        "x_vendor_extension": {"nested": [1, 2, 3]},
        "sector_identifier_uri": "https://app.example.com/sector.json",
    }

    # Registration needs the user's credential by default.
    anonymous = requests.post(REGISTER_URL, json=metadata)
    equal(anonymous.status_code, 401, "registration without a credential")
    equal(anonymous.json().get("error"), "invalid_token", "its error")
    check(
        anonymous.headers.get("WWW-Authenticate", "").startswith("Bearer"),
        "a 401 at /oauth/register names the Bearer scheme",
    )

    registration = requests.post(REGISTER_URL, headers=bearer(user_key), json=metadata)
    registered = json_of(registration, 201, "registration")
    equal(registration.headers.get("Cache-Control"), "no-store", "Cache-Control of a registration")
    client_id = registered["client_id"]
    client_secret = registered["client_secret"]
    registration_token = registered["registration_access_token"]
    registration_uri = registered["registration_client_uri"]
    check(client_secret, "a confidential client's registration returns its secret")
    equal(registered["client_secret_expires_at"], 0, "client_secret_expires_at")
    check(isinstance(registered["client_id_issued_at"], int), "client_id_issued_at is a number")
    equal(registration_uri, f"{REGISTER_URL}/{client_id}", "registration_client_uri")
    for name in [
        "client_name",
        "redirect_uris",
        "grant_types",
        "response_types",
        "token_endpoint_auth_method",
        "logo_uri",
        "client_uri",
        "policy_uri",
        "tos_uri",
        "contacts",
        "software_id",
        "software_version",
    ]:
        equal(registered.get(name), metadata[name], f"registered {name}")
    equal(set(registered["scope"].split()), {"users:read", "keys:read"}, "registered scope")
    for ignored in ["x_vendor_extension", "sector_identifier_uri"]:
        check(ignored not in registered, f"unknown metadata {ignored} is not echoed")

    # RFC 7592 §2.1: read with the registration access token.
    reading = requests.get(registration_uri, headers=bearer(registration_token))
    read = json_of(reading, 200, "reading")
    equal(reading.headers.get("Cache-Control"), "no-store", "Cache-Control of a read")
    # RFC 7592 §3: the client information response carries both, REQUIRED.
    equal(read.get("registration_client_uri"), registration_uri, "read registration_client_uri")
    equal(read.get("registration_access_token"), registration_token, "read registration token")
    equal(read["client_id"], client_id, "read client_id")
    equal(read["client_name"], metadata["client_name"], "read client_name")
    equal(read["logo_uri"], metadata["logo_uri"], "read logo_uri")
    equal(read["redirect_uris"], metadata["redirect_uris"], "read redirect_uris")

    for token, what in [
        ("napir_" + "x" * 40, "a made-up registration token"),
        (user_key, "the user's API key instead of the registration token"),
    ]:
        wrong = requests.get(registration_uri, headers=bearer(token))
        equal(wrong.status_code, 401, what)
        equal(wrong.json().get("error"), "invalid_token", f"{what}: error")
        check(
            wrong.headers.get("WWW-Authenticate", "").startswith("Bearer"),
            f"{what}: WWW-Authenticate names the Bearer scheme (RFC 6750 §3)",
        )

    # The registered client gets tokens with Authlib.
    session = OAuth2Session(client_id, client_secret, scope="users:read")
    token = session.fetch_token(TOKEN_URL, grant_type="client_credentials")
    equal(token["scope"], "users:read", "scope of the registered client's token")
    introspected = json_of(
        session.introspect_token(INTROSPECT_URL, token=token["access_token"]),
        200,
        "introspection by the registered client",
    )
    equal(introspected["active"], True, "the registered client's token is active")
    equal(introspected["client_id"], client_id, "its client_id")
    # ... and calls the API with it (Authlib's session puts it in the Authorization header).
    me = json_of(session.get(f"{BASE}/v1/users/me"), 200, "GET /v1/users/me with the token")
    check(me.get("id", "").startswith("usr_"), f"GET /v1/users/me answered {me!r}")
    first_access_token = token["access_token"]

    # RFC 7592 §2.2: PUT replaces the metadata; what is left out returns to its default.
    replacement = {
        "client_id": client_id,
        "client_name": "Authlib registered client, renamed",
        "redirect_uris": ["https://app.example.com/callback"],
        "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": "users:read",
    }
    updated = json_of(
        requests.put(registration_uri, headers=bearer(registration_token), json=replacement),
        200,
        "updating",
    )
    equal(updated["client_id"], client_id, "the client id stays")
    equal(updated.get("registration_client_uri"), registration_uri, "updated registration URI")
    equal(updated.get("registration_access_token"), registration_token, "the token stays")
    equal(updated["client_name"], replacement["client_name"], "updated client_name")
    equal(updated["redirect_uris"], replacement["redirect_uris"], "updated redirect_uris")
    equal(updated["scope"], "users:read", "updated scope")
    check(updated.get("logo_uri") is None, "logo_uri left out of the PUT is gone")
    # The secret stays, and the narrower scope holds at the token endpoint.
    check(updated.get("client_secret") in (None, client_secret), "the secret is not changed")
    error = oauth_error(
        lambda: session.fetch_token(
            TOKEN_URL, grant_type="client_credentials", scope="keys:read"
        ),
        "a scope removed by the update",
    )
    equal(error, "invalid_scope", "a scope removed by the update")
    again = session.fetch_token(TOKEN_URL, grant_type="client_credentials", scope="users:read")
    equal(again["scope"], "users:read", "the secret still works after the update")

    # No escalation through PUT: the scope cannot be widened again.
    widened = requests.put(
        registration_uri,
        headers=bearer(registration_token),
        json={**replacement, "scope": "users:read keys:read"},
    )
    equal(widened.status_code, 400, "widening the scope by PUT")
    equal(widened.json().get("error"), "invalid_client_metadata", "its error")

    # Invalid redirect URIs (RFC 7591 §3.2.2).
    for uri, why in [
        ("http://app.example.com/callback", "plain http off loopback"),
        ("https://app.example.com/callback#fragment", "a fragment"),
        ("/callback", "a relative URI"),
    ]:
        refused = requests.post(
            REGISTER_URL,
            headers=bearer(user_key),
            json={**metadata, "redirect_uris": [uri]},
        )
        equal(refused.status_code, 400, f"a redirect URI with {why}")
        body = refused.json()
        equal(body.get("error"), "invalid_redirect_uri", f"a redirect URI with {why}: error")
        check(body.get("error_description"), f"a redirect URI with {why}: a description")

    # RFC 7592 §2.3: DELETE, then the client and its tokens are gone.
    deleted = requests.delete(registration_uri, headers=bearer(registration_token))
    equal(deleted.status_code, 204, "deleting")
    gone = requests.get(registration_uri, headers=bearer(registration_token))
    equal(gone.status_code, 401, "reading a deleted registration")
    error = oauth_error(
        lambda: session.fetch_token(TOKEN_URL, grant_type="client_credentials"),
        "the deleted client at the token endpoint",
    )
    equal(error, "invalid_client", "the deleted client at the token endpoint")
    dead = requests.get(f"{BASE}/v1/users/me", headers=bearer(first_access_token))
    equal(dead.status_code, 401, "a token of the deleted client at /v1/users/me")


if __name__ == "__main__":
    main(run, "authlib dynamic client registration")
