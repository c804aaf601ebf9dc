-- Device authorization grant (issue 17, RFC 8628). One row per request to
-- /oauth/device_authorization: the HMACs of its device code (the client's) and user code
-- (typed by a person at /device), what it asks for, the polling state and the person's
-- decision. A new table only: instances of the previous version never read it. Clients that
-- list the new grant type are refused by older instances, so let clients register it once
-- every instance runs this version.
CREATE TABLE device_authorizations (
    device_code_hash BYTEA PRIMARY KEY,
    user_code_hash BYTEA NOT NULL UNIQUE,
    client_id TEXT NOT NULL REFERENCES oauth_clients(id) ON DELETE CASCADE,
    scopes BIGINT NOT NULL,
    resource_id TEXT,
    resource_scopes TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    poll_interval BIGINT NOT NULL,
    last_polled_at BIGINT,
    status TEXT NOT NULL,
    user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
    auth_time BIGINT,
    amr TEXT,
    decided_at BIGINT,
    family_id TEXT NOT NULL,
    redeemed_at BIGINT
);
CREATE INDEX device_authorizations_by_expiry ON device_authorizations (expires_at);
CREATE INDEX device_authorizations_by_resource ON device_authorizations (resource_id)
    WHERE resource_id IS NOT NULL;
