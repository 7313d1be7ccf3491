-- The OPERATOR role: operators sign in to the operators' console (pipelines, dead letters,
-- redrive, purge). An admin makes a user an operator with
--   UPDATE users SET role = 'OPERATOR', version = version + 1 WHERE email = '...';
-- (the user's next login token carries the role).
ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check CHECK (role IN ('USER', 'MODERATOR', 'ADMIN', 'OPERATOR'));
