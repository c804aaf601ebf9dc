-- Clients an administrator trusts with automatic error redirects (RFC 9700 §4.11.2): every
-- existing client starts untrusted. Codes remember whether the authorization request named
-- its redirect_uri, which the token request must then repeat (RFC 6749 §4.1.3). Codes
-- written by older instances keep the old rule. A refresh token's successor is derived
-- from its own random key, so that a repeated exchange within the grace period gets the
-- same successor. Tokens stored before this have none and get random successors.
ALTER TABLE oauth_clients ADD COLUMN trusted BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE authorization_codes ADD COLUMN redirect_uri_in_request BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE refresh_tokens ADD COLUMN successor_key BLOB;
