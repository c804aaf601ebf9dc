-- The check value of the secret key that seals signing keys (issue 11, item 5): an instance
-- started with another key is refused at start. Signing keys stay in signing_keys.private_key,
-- sealed by the first instance of this version that starts (see NetApi::start).
CREATE TABLE secret_key_check (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    check_value BLOB NOT NULL,
    created_at BIGINT NOT NULL
);
