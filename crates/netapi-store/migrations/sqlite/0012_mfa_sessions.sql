-- Second factors: a TOTP secret per user (sealed with the secret key, bound to its row; active
-- once confirmed, with the last time step used so that a code cannot be replayed) and
-- single-use recovery codes (HMAC only). Sessions learn how they were signed in (`amr`), where
-- from and when they were last seen; codes and refresh tokens carry `amr` to the ID token.
CREATE TABLE mfa_totp (
    user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    sealed_secret BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    confirmed_at BIGINT,
    last_used_step BIGINT
);

CREATE TABLE mfa_recovery_codes (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    hash BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    used_at BIGINT,
    PRIMARY KEY (user_id, hash)
);

ALTER TABLE sessions ADD COLUMN amr TEXT NOT NULL DEFAULT 'pwd';
ALTER TABLE sessions ADD COLUMN created_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN last_seen_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN user_agent TEXT;
ALTER TABLE sessions ADD COLUMN source TEXT;
UPDATE sessions SET created_at = auth_time, last_seen_at = auth_time;

ALTER TABLE authorization_codes ADD COLUMN amr TEXT NOT NULL DEFAULT 'pwd';
ALTER TABLE refresh_tokens ADD COLUMN amr TEXT NOT NULL DEFAULT 'pwd';
