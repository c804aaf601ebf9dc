-- Email (issue 15): whether a user's address is verified (existing users start unverified;
-- require_verified_email is off by default), and the single-use links mailed for email
-- verification and password reset, stored only as a keyed hash of their secret. A
-- verification link names the address it verifies, so that it verifies nothing after the
-- address changed. Additive only: instances of the previous version are unaffected.
ALTER TABLE users ADD COLUMN email_verified BOOLEAN NOT NULL DEFAULT FALSE;
CREATE TABLE email_tokens (
    id TEXT PRIMARY KEY,
    purpose TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    email TEXT NOT NULL,
    hash BYTEA NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX email_tokens_of_user ON email_tokens (user_id);
CREATE INDEX email_tokens_expiry ON email_tokens (expires_at);
