-- Dynamic client registration (issue 16, RFC 7591 and RFC 7592). A client registered
-- anonymously (`client_registration = open`) or with an initial access token has no owner, so
-- `oauth_clients.owner_id` becomes nullable. SQLite changes a column only by rebuilding the
-- table: every row is copied into the new table before the old one goes. Migrations run with
-- foreign keys off (see `SqliteStore::migrate`), so dropping the old table cascades to no
-- token, code or consent; the references name `oauth_clients` and find the new table, and
-- `PRAGMA foreign_key_check` runs before the commit. Instances of the previous version read
-- clients as before until a client without owner exists (turn `open` or `admin` on once
-- every instance runs this version).
CREATE TABLE oauth_clients_0017 (
    id TEXT PRIMARY KEY,
    owner_id TEXT REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,
    grant_types TEXT NOT NULL,
    scopes BIGINT NOT NULL,
    auth_method TEXT NOT NULL,
    secret_hash BLOB,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    rate_limit BIGINT,
    trusted BOOLEAN NOT NULL DEFAULT FALSE,
    resources TEXT NOT NULL DEFAULT '',
    resource_scopes TEXT NOT NULL DEFAULT '',
    id_token_signed_response_alg TEXT
);
INSERT INTO oauth_clients_0017 (id, owner_id, name, redirect_uris, grant_types, scopes,
    auth_method, secret_hash, created_at, updated_at, rate_limit, trusted, resources,
    resource_scopes, id_token_signed_response_alg)
SELECT id, owner_id, name, redirect_uris, grant_types, scopes, auth_method, secret_hash,
    created_at, updated_at, rate_limit, trusted, resources, resource_scopes,
    id_token_signed_response_alg
FROM oauth_clients;
DROP TABLE oauth_clients;
ALTER TABLE oauth_clients_0017 RENAME TO oauth_clients;
CREATE INDEX oauth_clients_by_owner ON oauth_clients (owner_id, id);
-- What RFC 7592 management needs: the HMAC of the registration access token, and the
-- RFC 7591 metadata beyond the client record (a JSON object).
CREATE TABLE client_registrations (
    client_id TEXT PRIMARY KEY REFERENCES oauth_clients(id) ON DELETE CASCADE,
    token_hash BLOB NOT NULL UNIQUE,
    metadata TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
-- Initial access tokens (RFC 7591 §3) made by administrators: each good for one registration.
CREATE TABLE registration_tokens (
    id TEXT PRIMARY KEY,
    token_hash BLOB NOT NULL UNIQUE,
    created_by TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX registration_tokens_by_expiry ON registration_tokens (expires_at);
