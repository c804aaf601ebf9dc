-- OpenID Connect RP-Initiated Logout 1.0 and Back-Channel Logout 1.0 (issue 16).
--
-- A browser session gets `sid`, a random identifier of its own (never the cookie or its
-- hash), which ID tokens carry. Sessions started before this migration get one here;
-- sessions an instance of the previous version starts while both run keep NULL and are
-- treated as having none (their ID tokens carry no `sid`, and back-channel logout names
-- only the user for them).
ALTER TABLE sessions ADD COLUMN sid TEXT;
UPDATE sessions SET sid = 'sid_' || md5(random()::text || clock_timestamp()::text || encode(hash, 'hex')) WHERE sid IS NULL;
CREATE INDEX sessions_by_sid ON sessions (sid);

-- The session a code and a refresh token were issued in, for the `sid` of their ID tokens.
ALTER TABLE authorization_codes ADD COLUMN sid TEXT;
ALTER TABLE refresh_tokens ADD COLUMN sid TEXT;

-- A client's logout metadata (OpenID Connect names): where it may be sent after signing
-- out (one a line, as `redirect_uris`), and where it receives logout tokens.
ALTER TABLE oauth_clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '';
ALTER TABLE oauth_clients ADD COLUMN backchannel_logout_uri TEXT;
ALTER TABLE oauth_clients ADD COLUMN backchannel_logout_session_required BOOLEAN NOT NULL DEFAULT FALSE;

-- Which clients received an ID token in which session: told when the session ends.
CREATE TABLE session_clients (
    sid TEXT NOT NULL,
    client_id TEXT NOT NULL REFERENCES oauth_clients(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (sid, client_id)
);
CREATE INDEX session_clients_by_created ON session_clients (created_at);
