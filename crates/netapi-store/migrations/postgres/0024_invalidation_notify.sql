-- Instant invalidation (issue 18): every row written to `invalidations` is also announced on
-- the channel `netapi_invalidations` (payload: its `seq`), delivered when the writing
-- transaction commits. Each instance LISTENs on a connection of its own and reads the table
-- at once; polling stays as the safety net. A trigger rather than a second statement in the
-- writer, so that instances of the previous release, which write the same rows, notify too.
-- Only adds: instances that do not listen are unaffected.
CREATE OR REPLACE FUNCTION netapi_notify_invalidation() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('netapi_invalidations', NEW.seq::text);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER invalidations_notify
    AFTER INSERT ON invalidations
    FOR EACH ROW EXECUTE FUNCTION netapi_notify_invalidation();
