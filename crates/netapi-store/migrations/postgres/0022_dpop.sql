-- DPoP (RFC 9449, issue 17): a public client's refresh token is bound to the key of the DPoP
-- proof it was issued with, and is exchanged only with a proof of that key. A new nullable
-- column: rows of earlier versions are unbound, as they were. An instance of the previous
-- version still running would rotate a bound token into an unbound successor, so turn DPoP
-- on for public clients once every instance runs this version.
ALTER TABLE refresh_tokens ADD COLUMN dpop_jkt TEXT;
