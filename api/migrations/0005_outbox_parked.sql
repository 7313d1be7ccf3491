-- Rows the relay can never publish (the payload does not fit its topic's schema, an
-- unknown topic, a record Kafka refuses for good) are parked instead of blocking every row
-- after them: `failed_at` and `failure` say when and why. Parked rows are neither pending
-- nor pruned; an operator fixes the row and clears `failed_at` to publish it (docs/api.md).
ALTER TABLE outbox ADD COLUMN failed_at timestamptz, ADD COLUMN failure text;
DROP INDEX outbox_unpublished;
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL AND failed_at IS NULL;
CREATE INDEX outbox_parked ON outbox (id) WHERE failed_at IS NOT NULL;
