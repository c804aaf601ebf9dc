ALTER TABLE api_keys ADD COLUMN rate_limit BIGINT;
ALTER TABLE oauth_clients ADD COLUMN rate_limit BIGINT;
