-- Passkeys (WebAuthn credentials): several per user, each with the serialized credential
-- (public key, signature counter) that webauthn-rs checks an assertion against; its
-- credential id (base64url) is unique across users. And the ceremonies in progress: the state
-- webauthn-rs needs to check the browser's answer, found by an HMAC of what binds it to one
-- browser, deleted when taken (single use) or once expired.
CREATE TABLE passkeys (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    credential_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    passkey TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX passkeys_user ON passkeys (user_id);

CREATE TABLE webauthn_ceremonies (
    hash BYTEA PRIMARY KEY,
    purpose TEXT NOT NULL,
    user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX webauthn_ceremonies_expiry ON webauthn_ceremonies (expires_at);
