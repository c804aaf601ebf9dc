-- Operator-defined resources (issue 13): APIs besides Net API's own that Net API guards.
-- A deleted resource stays as a tombstone (deleted_at) so that its identifier is never reused.
-- Scopes are stored one per line as "name description", lists of names space-separated.
-- Every column added to an existing table is nullable or has a default meaning Net API's
-- own resource, so instances of the previous version keep working beside this one.
CREATE TABLE resources (
    id TEXT PRIMARY KEY,
    identifier TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    self_service_scopes TEXT NOT NULL,
    allow_api_keys BOOLEAN NOT NULL,
    access_token_ttl BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted_at BIGINT
);
CREATE TABLE resource_grants (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    resource_id TEXT NOT NULL REFERENCES resources(id),
    scopes TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, resource_id)
);
ALTER TABLE api_keys ADD COLUMN resource_id TEXT;
ALTER TABLE api_keys ADD COLUMN resource_identifier TEXT;
ALTER TABLE api_keys ADD COLUMN resource_scopes TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN metadata TEXT;
CREATE INDEX api_keys_by_resource ON api_keys (resource_id) WHERE resource_id IS NOT NULL;
ALTER TABLE oauth_clients ADD COLUMN resources TEXT NOT NULL DEFAULT '';
ALTER TABLE oauth_clients ADD COLUMN resource_scopes TEXT NOT NULL DEFAULT '';
ALTER TABLE refresh_tokens ADD COLUMN resource_id TEXT;
ALTER TABLE refresh_tokens ADD COLUMN resource_scopes TEXT NOT NULL DEFAULT '';
CREATE INDEX refresh_tokens_by_resource ON refresh_tokens (resource_id) WHERE resource_id IS NOT NULL;
ALTER TABLE authorization_codes ADD COLUMN resource_id TEXT;
ALTER TABLE authorization_codes ADD COLUMN resource_scopes TEXT NOT NULL DEFAULT '';
ALTER TABLE consents ADD COLUMN resource_scopes TEXT NOT NULL DEFAULT ''
