-- Usage of API keys (issue 13): checks per key, hour and outcome, written in batches from
-- counts kept in memory. A new table only, so instances of the previous version are unaffected.
CREATE TABLE api_key_usage (
    key_id TEXT NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
    hour BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (key_id, hour, outcome)
);
CREATE INDEX api_key_usage_by_hour ON api_key_usage (hour)
