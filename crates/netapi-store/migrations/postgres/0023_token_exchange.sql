-- Token exchange (RFC 8693): the identifiers of the resources a client may obtain tokens for
-- by exchanging another token, space-separated as `resources` is (Net API's own issuer among
-- them when listed). Every existing client gets the empty list: none may exchange until its
-- owner lists resources, and instances of the previous release never read the column.
ALTER TABLE oauth_clients ADD COLUMN token_exchange_resources TEXT NOT NULL DEFAULT '';
