-- Retention (issue 18): the sweep deletes rows that are over in batches, each picking up to
-- a thousand rows by the column that says when they end. These indexes let it find them
-- without reading the whole table. Indexes only: instances of the previous version are
-- unaffected (they write a little more). Each index is built in the migration's transaction,
-- which holds writes to its table meanwhile: seconds for a table of millions of rows.
CREATE INDEX IF NOT EXISTS authorization_codes_by_expiry ON authorization_codes (expires_at);
CREATE INDEX IF NOT EXISTS sessions_by_expiry ON sessions (expires_at);
CREATE INDEX IF NOT EXISTS invitations_by_expiry ON invitations (expires_at);
CREATE INDEX IF NOT EXISTS refresh_tokens_by_family_expiry ON refresh_tokens (family_expires_at);
CREATE INDEX IF NOT EXISTS invalidations_by_expiry ON invalidations (expires_at)
    WHERE expires_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS invalidations_by_created ON invalidations (created_at)
    WHERE expires_at IS NULL;
CREATE INDEX IF NOT EXISTS api_keys_by_revocation ON api_keys (revoked_at)
    WHERE revoked_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS api_keys_by_expiry ON api_keys (expires_at)
    WHERE expires_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS webhook_deliveries_by_created ON webhook_deliveries (created_at);
CREATE INDEX IF NOT EXISTS audit_events_by_created ON audit_events (created_at);
