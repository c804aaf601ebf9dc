-- Webhooks, made safe under concurrency (issue 14). Additive: instances of the previous
-- version keep working (their rows have no slot and no lease mark, which the new version
-- reads as "no slot" and "not leased").
--
-- `slot`: each live webhook holds one of the slots 0..19 under a unique index, so that two
-- creations at once cannot both take the last one (the cap is the index, not a count read
-- before the insert). Existing live webhooks get the slots in id order.
ALTER TABLE webhooks ADD COLUMN slot BIGINT;
UPDATE webhooks SET slot = (
    SELECT COUNT(*) FROM webhooks w
    WHERE w.disabled_at IS NULL AND w.id < webhooks.id
) WHERE disabled_at IS NULL;
CREATE UNIQUE INDEX webhooks_live_slot ON webhooks (slot) WHERE disabled_at IS NULL;
-- `leased_until`: set while an instance attempts the delivery (cleared when the attempt is
-- recorded); `redeliver_at`: a redelivery asked for during that attempt, made once it ends.
ALTER TABLE webhook_deliveries ADD COLUMN leased_until BIGINT;
ALTER TABLE webhook_deliveries ADD COLUMN redeliver_at BIGINT;
