-- The schema registry's storage. Schemas are immutable and never deleted (an id always means
-- the same schema); subjects are lists of versions pointing at schemas.

-- Global schema ids, shared by every subject, never reused.
CREATE SEQUENCE schema_ids AS integer START 1;

CREATE TABLE schemas (
    id          integer PRIMARY KEY,
    -- sha256 of the canonical text plus the references: one id per distinct schema.
    fingerprint bytea   NOT NULL UNIQUE,
    schema_type text    NOT NULL DEFAULT 'AVRO',
    -- The canonical text (sorted keys, no whitespace), returned by every read.
    schema      text    NOT NULL,
    -- [{"name": ..., "subject": ..., "version": N}], in the submitted order.
    refs        jsonb   NOT NULL DEFAULT '[]',
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- /referencedby: which schemas reference {"subject": s, "version": v}.
CREATE INDEX schemas_refs ON schemas USING gin (refs jsonb_path_ops);

CREATE TABLE subject_versions (
    subject    text    NOT NULL,
    version    integer NOT NULL CHECK (version > 0),
    schema_id  integer NOT NULL REFERENCES schemas (id),
    -- Soft-deleted versions stay until a permanent delete removes them.
    deleted    boolean NOT NULL DEFAULT false,
    registered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subject, version)
);

CREATE INDEX subject_versions_schema ON subject_versions (schema_id);

-- Compatibility level per subject; the subject '' holds the global level.
CREATE TABLE compatibility_levels (
    subject text PRIMARY KEY,
    level   text NOT NULL
);

-- Mode per subject; the subject '' holds the global mode.
CREATE TABLE modes (
    subject text PRIMARY KEY,
    mode    text NOT NULL
);
