"""Token exchange (RFC 8693) with Authlib's OAuth2Session.fetch_token against a running Net
API: a service trades a user's access token for the Orders API for a narrower one for the
Invoices API; a wider scope is invalid_scope, a resource it may not reach invalid_target.

Environment: BASE (the server's address, also its issuer); SERVICE_ID, SERVICE_SECRET (the
Orders service's client: token-exchange grant, `token_exchange_resources` = [INVOICES]);
READER_ID, READER_SECRET (the Invoices API's client, which lists INVOICES in `resources`
and may introspect its tokens); SUBJECT_TOKEN (the user's access token for ORDERS, with
the scopes orders:read and invoices:read); USER_ID (that user); ORDERS, INVOICES, VAULT
(resource identifiers: VAULT exists but the service may not exchange for it).
"""

from authlib.integrations.requests_client import OAuth2Session

from common import INTROSPECT_URL, TOKEN_URL, StatusRecorder, check, env, equal, json_of, main, oauth_error

GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


def run():
    service_id = env("SERVICE_ID")
    subject_token = env("SUBJECT_TOKEN")
    invoices = env("INVOICES")
    service = OAuth2Session(
        service_id, env("SERVICE_SECRET"), token_endpoint_auth_method="client_secret_basic"
    )
    status = StatusRecorder(service)
    reader = OAuth2Session(env("READER_ID"), env("READER_SECRET"))

    def exchange(**params):
        return service.fetch_token(
            TOKEN_URL,
            grant_type=GRANT,
            subject_token=subject_token,
            subject_token_type=ACCESS_TOKEN_TYPE,
            **params,
        )

    # The subject token, as the Orders API would see it: for ORDERS, two scopes.
    subject = json_of(
        OAuth2Session(service_id, env("SERVICE_SECRET")).introspect_token(
            INTROSPECT_URL, token=subject_token
        ),
        200,
        "introspecting the subject token",
    )
    equal(subject["active"], True, "the subject token is active")
    equal(subject["aud"], env("ORDERS"), "the subject token's audience")
    equal(set(subject["scope"].split()), {"orders:read", "invoices:read"}, "its scopes")

    # A narrower exchange: one of the subject token's scopes, for the Invoices API.
    exchanged = exchange(resource=invoices, scope="invoices:read")
    equal(exchanged["issued_token_type"], ACCESS_TOKEN_TYPE, "issued_token_type")
    equal(exchanged["token_type"], "Bearer", "token_type")
    equal(exchanged["scope"], "invoices:read", "scope of the exchanged token")
    check("refresh_token" not in exchanged, "an exchange gives no refresh token")
    check(0 < int(exchanged["expires_in"]) <= 300, "expires_in within the subject token's")

    introspected = json_of(
        reader.introspect_token(INTROSPECT_URL, token=exchanged["access_token"]),
        200,
        "introspection by the Invoices API",
    )
    equal(introspected["active"], True, "the exchanged token is active")
    equal(introspected["aud"], invoices, "its audience")
    equal(introspected["scope"], "invoices:read", "its scope")
    equal(introspected["sub"], env("USER_ID"), "it acts for the user")
    equal(introspected["client_id"], service_id, "it was issued to the service")
    equal(introspected["act"], {"sub": service_id}, "its act claim names the service")

    # `audience` works as `resource` does, and the default scope is what carries over.
    by_audience = exchange(audience=invoices)
    equal(by_audience["scope"], "invoices:read", "scope by default with audience")

    # Wider than the subject token: invalid_scope.
    for scope, why in [
        ("invoices:read invoices:write", "a scope the subject token lacks"),
        ("invoices:read orders:read", "a scope that is not the target's"),
    ]:
        error = oauth_error(lambda: exchange(resource=invoices, scope=scope), why)
        equal(error, "invalid_scope", why)
        equal(status.last, 400, f"{why}: status")

    # Somewhere the service may not exchange for: invalid_target.
    for resource, why in [
        (env("VAULT"), "a resource not in the service's token_exchange_resources"),
        ("https://unknown.example.com", "an unknown resource"),
    ]:
        error = oauth_error(
            lambda: exchange(resource=resource, scope="invoices:read"), why
        )
        equal(error, "invalid_target", why)
        equal(status.last, 400, f"{why}: status")

    # A subject token that is not a token: invalid_request (RFC 8693 §2.2.2).
    error = oauth_error(
        lambda: service.fetch_token(
            TOKEN_URL,
            grant_type=GRANT,
            subject_token="not-a-token",
            subject_token_type=ACCESS_TOKEN_TYPE,
            resource=invoices,
        ),
        "a made-up subject token",
    )
    equal(error, "invalid_request", "a made-up subject token")


if __name__ == "__main__":
    main(run, "authlib token exchange")
