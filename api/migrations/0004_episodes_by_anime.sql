-- An anime's episodes are looked up by anime_id alone (episode counts of `anineplus-search
-- verify`, `Anime.episodes`): the unique index on (anime_id, number) is partial (live
-- episodes only), so those scans read the whole table without this one.
CREATE INDEX episodes_by_anime ON episodes (anime_id);
