-- private_key_jwt client authentication and pushed authorization requests (issue 16,
-- RFC 7523 and RFC 9126). Only additions: instances of the previous version keep working
-- until a client registers with token_endpoint_auth_method private_key_jwt, which they do not
-- know (turn it on once every instance runs this version).
-- The client's public keys: an inline JWK Set (JSON text) or where to fetch it.
ALTER TABLE oauth_clients ADD COLUMN jwks TEXT;
ALTER TABLE oauth_clients ADD COLUMN jwks_uri TEXT;
-- require_pushed_authorization_requests (RFC 9126 §6).
ALTER TABLE oauth_clients ADD COLUMN require_par BOOLEAN NOT NULL DEFAULT FALSE;
-- Pushed authorization requests, under the HMAC of their request_uri (a bearer handle),
-- until used once or expired.
CREATE TABLE pushed_requests (
    hash BLOB PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES oauth_clients(id) ON DELETE CASCADE,
    params TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX pushed_requests_by_expiry ON pushed_requests (expires_at);
-- The jti of each client assertion (SHA-256 of it), kept until the assertion expires, so
-- that a replay is refused.
CREATE TABLE client_assertion_jtis (
    client_id TEXT NOT NULL REFERENCES oauth_clients(id) ON DELETE CASCADE,
    jti_hash BLOB NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti_hash)
);
CREATE INDEX client_assertion_jtis_by_expiry ON client_assertion_jtis (expires_at);
