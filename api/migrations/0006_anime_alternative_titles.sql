-- Alternative titles of an anime: translations and romanisations of its title (the
-- catalogue's `titleTranslate`), searched beside the title. Empty for existing rows, as
-- the `anime` events' default (`anime.v2`) says for events written before.
ALTER TABLE anime ADD COLUMN alternative_titles text[] NOT NULL DEFAULT '{}';
