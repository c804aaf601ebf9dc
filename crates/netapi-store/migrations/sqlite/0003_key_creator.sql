-- The OAuth client whose access token created a key: such keys end with the user's consent
-- for that client, or with the client. NULL for keys made otherwise (and every earlier key).
ALTER TABLE api_keys ADD COLUMN created_by_client TEXT;
CREATE INDEX api_keys_created_by_client ON api_keys (created_by_client) WHERE created_by_client IS NOT NULL;
-- A password or email change ends every session of the user.
CREATE INDEX sessions_by_user ON sessions (user_id);
