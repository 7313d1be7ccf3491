//! In-memory cache of schemas by id. A schema id always means the same schema (rows are
//! never updated or deleted), so entries never go stale and are kept for the process's
//! life; the number of distinct schemas of a registry is small.
//!
//! Subject and version reads are not cached: another registry instance may change them at
//! any moment, and correctness across instances matters more than saving a round trip.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::store::StoredSchema;

/// Schemas by id, shared by every request of one registry instance.
#[derive(Debug, Default)]
pub(crate) struct SchemaCache {
    by_id: RwLock<HashMap<i32, Arc<StoredSchema>>>,
}

impl SchemaCache {
    pub(crate) fn get(&self, id: i32) -> Option<Arc<StoredSchema>> {
        self.by_id
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&id)
            .cloned()
    }

    pub(crate) fn insert(&self, schema: Arc<StoredSchema>) {
        self.by_id
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(schema.id, schema);
    }
}
