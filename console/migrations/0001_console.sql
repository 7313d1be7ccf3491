-- The console's own tables, in the schema `console` of the API's database (the console's
-- connections set `search_path` to it; its migrations are recorded there too, apart from
-- the API's).

-- The index of the dead letters, fed by the console's consumer of every `<pipeline>.dlq`
-- topic as they arrive: pages query it, never the topic.
CREATE TABLE console_dead_letters (
    topic              text        NOT NULL,
    partition          integer     NOT NULL,
    "offset"           bigint      NOT NULL,
    pipeline           text        NOT NULL,
    record_key         text        NOT NULL,
    error_class        text        NOT NULL,
    error_message      text        NOT NULL,
    fingerprint        text        NOT NULL,
    original_topic     text        NOT NULL,
    attempts           integer,
    failed_at          timestamptz,
    -- The redrive job whose record this came back as, from its `redrive-id` header.
    redrive_id         uuid,
    -- The redrive job that sent this dead letter back to its original topic.
    redriven_by        uuid,
    value_bytes        integer     NOT NULL,
    PRIMARY KEY (topic, partition, "offset")
);
CREATE INDEX console_dead_letters_by_fingerprint ON console_dead_letters (pipeline, fingerprint);
CREATE INDEX console_dead_letters_by_redrive ON console_dead_letters (redrive_id) WHERE redrive_id IS NOT NULL;

-- How far the index has read each partition (written in the transaction of the rows).
CREATE TABLE console_index_positions (
    topic       text    NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint  NOT NULL,
    PRIMARY KEY (topic, partition)
);

-- Redrive jobs: the selection is frozen when the job is created (the letters indexed below
-- the end offsets seen then), so a job never re-reads its own output; `sent_at` marks the
-- letters sent, so a job resumes after a restart where it stopped.
CREATE TABLE console_redrive_jobs (
    id             uuid        PRIMARY KEY,
    pipeline       text        NOT NULL,
    topic          text        NOT NULL,
    selection      text        NOT NULL,
    max_per_second integer     NOT NULL CHECK (max_per_second > 0),
    status         text        NOT NULL CHECK (status IN ('running', 'done', 'failed')),
    total          bigint      NOT NULL,
    sent           bigint      NOT NULL DEFAULT 0,
    error          text,
    created_by     text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz
);

CREATE TABLE console_redrive_letters (
    job_id    uuid    NOT NULL REFERENCES console_redrive_jobs (id),
    partition integer NOT NULL,
    "offset"  bigint  NOT NULL,
    sent_at   timestamptz,
    PRIMARY KEY (job_id, partition, "offset")
);

-- Every write of the console: who, what, when, how many records.
CREATE TABLE console_audit (
    id       bigserial   PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    actor    text        NOT NULL,
    role     text        NOT NULL,
    action   text        NOT NULL,
    target   text        NOT NULL,
    records  bigint      NOT NULL,
    detail   text        NOT NULL
);
