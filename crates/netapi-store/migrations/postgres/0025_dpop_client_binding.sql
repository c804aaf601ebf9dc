-- DPoP (RFC 9449, issue 17): an authorization code bound to the key thumbprint the
-- authorization request named (`dpop_jkt`, §10), and clients that require DPoP-bound access
-- tokens (`dpop_bound_access_tokens`, §5.2). Both new columns: NULL (unbound) and FALSE for
-- rows of earlier versions, as they behaved. An instance of the previous version still
-- running ignores both (it would exchange a bound code without a proof, and issue a bearer
-- token to a client that asks for DPoP only): set `dpop_bound_access_tokens` and rely on
-- `dpop_jkt` once every instance runs this version.
ALTER TABLE authorization_codes ADD COLUMN dpop_jkt TEXT;
ALTER TABLE oauth_clients ADD COLUMN dpop_bound_access_tokens BOOLEAN NOT NULL DEFAULT FALSE;
