-- The transactional outbox: one row per event, written in the transaction of its change.
-- The relay publishes unpublished rows in id order and sets `published_at`; published
-- rows are pruned after a retention.
CREATE TABLE outbox (
    id                bigserial PRIMARY KEY,
    topic             text NOT NULL,
    aggregate_id      text NOT NULL,
    aggregate_version bigint NOT NULL,
    event_type        text NOT NULL,
    correlation_id    text,
    payload           jsonb NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    published_at      timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL;
