//! The indices of the search indexer and their mappings.
//!
//! Each is an alias `<INDEX_PREFIX>-<name>` over `<INDEX_PREFIX>-<name>-v<N>` (see
//! [`IndexSpec`]). Every document has `id` (keyword), `aggregateVersion` (long, equal to
//! its external `_version` for whole-document writes) and `deleted` (boolean, true on
//! soft-delete tombstones). Text fields are analysed with the standard analyser and keep a
//! `keyword` sub-field for sorting and exact match. No user email or secret is indexed.

use anineplus_connectors::search_sink::IndexSpec;
use anineplus_connectors::search_sink::templates::SetupError;
use elasticsearch::Elasticsearch;
use elasticsearch::indices::{IndicesDeleteIndexTemplateParts, IndicesDeleteParts};
use serde_json::{Value, json};

pub use anineplus_schemas::indices::{DEFAULT_PREFIX, Index};

/// The alias of `index` under `prefix`, and its mappings.
pub fn spec(index: Index, prefix: &str) -> IndexSpec {
    IndexSpec {
        alias: index.alias(prefix),
        mappings: mappings(index),
    }
}

/// The `mappings` object of `index`.
pub fn mappings(index: Index) -> Value {
    let text = json!({ "type": "text", "fields": { "keyword": { "type": "keyword", "ignore_above": 256 } } });
    let keyword = json!({ "type": "keyword" });
    let date = json!({ "type": "date", "format": "epoch_millis" });
    let mut properties = json!({
        "id": keyword,
        "aggregateVersion": { "type": "long" },
        "deleted": { "type": "boolean" },
        "updatedAt": date,
    });
    let specific = match index {
        Index::Anime => json!({
            "title": text,
            // Searched as titles are: always the title's own mapping.
            "alternativeTitles": text,
            "synopsis": { "type": "text" },
            "genres": keyword,
            "status": keyword,
            // `short`: years fit; a value out of range is a mapping error (dead letter).
            "releaseYear": { "type": "short" },
            // Denormalised from episode events (see `denormalise`): the count of live
            // episodes, and the episode id → signed version map it is derived from.
            "episodeCount": { "type": "integer" },
            "episodes": { "type": "object", "enabled": false },
        }),
        Index::Episodes => json!({
            "animeId": keyword,
            "number": { "type": "integer" },
            "title": text,
            "durationSeconds": { "type": "integer" },
            "airDate": { "type": "date", "format": "epoch_millis" },
        }),
        Index::Comments => json!({
            "animeId": keyword,
            "episodeId": keyword,
            "authorId": keyword,
            "body": { "type": "text" },
            "status": keyword,
            "createdAt": date,
            "moderatedBy": keyword,
            "moderationReason": { "type": "text" },
            "moderatedAt": date,
            // Denormalised from the anime (see `denormalise`).
            "animeTitle": text,
            "animeTitleVersion": { "type": "long" },
        }),
        Index::Users => json!({
            "name": text,
            "role": keyword,
            "createdAt": date,
        }),
        Index::Organizations => json!({
            "name": text,
            "slug": keyword,
            "ownerId": keyword,
            "members": { "properties": { "userId": keyword, "role": keyword } },
        }),
    };
    let map = properties.as_object_mut().expect("an object");
    map.extend(specific.as_object().expect("an object").clone());
    json!({ "dynamic": false, "properties": properties })
}

/// Puts the templates and creates the first index of every index under `prefix` where
/// missing (idempotent): what the indexer does at start.
pub async fn create_all(client: &Elasticsearch, prefix: &str) -> Result<(), SetupError> {
    for index in Index::ALL {
        spec(index, prefix).ensure(client).await?;
    }
    Ok(())
}

/// Deletes the first index and the template of every index under `prefix` (what
/// [`create_all`] made), ignoring failures: tests and benches clean up with it.
pub async fn drop_all(client: &Elasticsearch, prefix: &str) {
    for index in Index::ALL {
        let spec = spec(index, prefix);
        let _ = client
            .indices()
            .delete(IndicesDeleteParts::Index(&[&spec.first_index()]))
            .send()
            .await;
        let _ = client
            .indices()
            .delete_index_template(IndicesDeleteIndexTemplateParts::Name(&spec.alias))
            .send()
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_have_no_email_and_every_index_has_the_common_fields() {
        for index in Index::ALL {
            let m = mappings(index);
            for field in ["id", "aggregateVersion", "deleted"] {
                assert!(m["properties"][field].is_object(), "{index:?} {field}");
            }
        }
        assert!(mappings(Index::Users)["properties"]["email"].is_null());
        assert_eq!(Index::Anime.alias("anineplus"), "anineplus-anime");
    }

    #[test]
    fn alternative_titles_are_mapped_as_the_title_is() {
        let m = mappings(Index::Anime);
        assert!(m["properties"]["title"].is_object());
        assert_eq!(
            m["properties"]["alternativeTitles"],
            m["properties"]["title"]
        );
    }
}
