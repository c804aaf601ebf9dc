-- The algorithm of a client's ID tokens (OpenID Connect Dynamic Client Registration's
-- `id_token_signed_response_alg`). Clients registered before this column existed keep NULL,
-- which means the server's `signing_algorithm`: the algorithm their ID tokens were signed with
-- until now, so no relying party sees another after the upgrade. New clients get RS256 unless
-- they ask for another. RSA keys need no change here: `signing_keys.alg` names the algorithm.
ALTER TABLE oauth_clients ADD COLUMN id_token_signed_response_alg TEXT;
