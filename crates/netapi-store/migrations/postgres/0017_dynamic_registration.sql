-- Dynamic client registration (issue 16, RFC 7591 and RFC 7592). A client registered
-- anonymously (`client_registration = open`) or with an initial access token has no owner, so
-- `oauth_clients.owner_id` becomes nullable; every existing row keeps its owner. Instances of
-- the previous version read clients as before until such a client exists (turn `open` or
-- `admin` on once every instance runs this version).
ALTER TABLE oauth_clients ALTER COLUMN owner_id DROP NOT NULL;
-- What RFC 7592 management needs: the HMAC of the registration access token, and the
-- RFC 7591 metadata beyond the client record (a JSON object).
CREATE TABLE client_registrations (
    client_id TEXT PRIMARY KEY REFERENCES oauth_clients(id) ON DELETE CASCADE,
    token_hash BYTEA NOT NULL UNIQUE,
    metadata TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
-- Initial access tokens (RFC 7591 §3) made by administrators: each good for one registration.
CREATE TABLE registration_tokens (
    id TEXT PRIMARY KEY,
    token_hash BYTEA NOT NULL UNIQUE,
    created_by TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX registration_tokens_by_expiry ON registration_tokens (expires_at);
