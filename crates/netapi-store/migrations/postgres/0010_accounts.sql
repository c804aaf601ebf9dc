-- Accounts (issue 15): an administrator may disable a user (every credential of theirs is
-- refused while `disabled_at` is set) and invite people to register. An invitation's token
-- is stored only as its HMAC; `used_at` is set once, by the registration that used it, in
-- the transaction that creates the user. Additive only: instances of the previous version
-- read users as before and never see the new table.
ALTER TABLE users ADD COLUMN disabled_at BIGINT;
CREATE TABLE invitations (
    id TEXT PRIMARY KEY,
    token_hash BYTEA NOT NULL UNIQUE,
    email TEXT,
    role TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    used_by TEXT
);
CREATE INDEX invitations_outstanding ON invitations (expires_at) WHERE used_at IS NULL;
