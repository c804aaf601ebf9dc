-- Durable Back-Channel Logout delivery (issue 16): a logout token that could not be
-- delivered at once (receiver down, 5xx) is retried with backoff for about an hour, by any
-- instance, after a restart too. One row per (ended session, client) until it is delivered,
-- refused (4xx) or given up. No token is stored: each attempt signs a fresh one.
-- `next_attempt_at` doubles as the lease of the attempt in flight (as in
-- `webhook_deliveries`). No foreign key to `users`: a deleted user's clients are still told.
-- Only adds a table: instances of the previous release never read it.
CREATE TABLE logout_deliveries (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES oauth_clients(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    sid TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX logout_deliveries_due ON logout_deliveries (next_attempt_at);
CREATE INDEX logout_deliveries_by_created ON logout_deliveries (created_at);
