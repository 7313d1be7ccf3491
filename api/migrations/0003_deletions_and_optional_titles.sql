-- Deleted users and comments, and untitled episodes.
--
-- A deleted user keeps its row (id, role, version, times) so that its version goes on
-- increasing and its comments keep a valid author; everything personal (email, name,
-- password hash) is erased. A deleted comment keeps its row without its text. Both are
-- soft deletes, like anime and episodes: the row keeps its version, so a late event can
-- never resurrect the document.

ALTER TABLE users
    ADD COLUMN deleted_at timestamptz,
    ALTER COLUMN email DROP NOT NULL,
    ALTER COLUMN name DROP NOT NULL,
    ALTER COLUMN password_hash DROP NOT NULL,
    ADD CONSTRAINT users_personal_data_iff_live CHECK (
        (deleted_at IS NULL AND email IS NOT NULL AND name IS NOT NULL AND password_hash IS NOT NULL)
        OR (deleted_at IS NOT NULL AND email IS NULL AND name IS NULL AND password_hash IS NULL)
    );

ALTER TABLE comments
    ADD COLUMN deleted_at timestamptz;

-- An episode's title is optional (untitled, or cleared).
ALTER TABLE episodes
    ALTER COLUMN title DROP NOT NULL;
