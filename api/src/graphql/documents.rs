//! Parsed documents of recent requests: an app sends the same few operations over and over
//! (with different variables), so each is parsed once instead of on every request. Parsing
//! with async-graphql's grammar was several percent of the API's CPU per mutation.
//!
//! Bounded against clients that send a new document each time: only documents of at most
//! [`MAX_QUERY_BYTES`] are kept, at most [`CAPACITY`] of them, and the cache starts empty
//! again when it is full. Only documents that parsed are kept; what a document may do is
//! checked on every request all the same ([`super::limits`], validation).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Request, ServerError};

/// Longest query text kept, in bytes.
pub const MAX_QUERY_BYTES: usize = 4096;

/// Most documents kept.
pub const CAPACITY: usize = 256;

/// The cache (one per API process).
#[derive(Default)]
pub struct DocumentCache {
    documents: Mutex<HashMap<String, Arc<ExecutableDocument>>>,
}

impl DocumentCache {
    /// The parsed document of `request`: a copy of the kept one when its query text was
    /// seen before, else parsed now (and kept).
    pub fn parsed<'r>(
        &self,
        request: &'r mut Request,
    ) -> Result<&'r ExecutableDocument, ServerError> {
        if request.query.len() <= MAX_QUERY_BYTES {
            let kept = self
                .documents
                .lock()
                .expect("document cache lock")
                .get(&request.query)
                .cloned();
            match kept {
                Some(document) => request.set_parsed_query(ExecutableDocument::clone(&document)),
                None => {
                    let document = Arc::new(request.parsed_query()?.clone());
                    let mut documents = self.documents.lock().expect("document cache lock");
                    if documents.len() >= CAPACITY {
                        documents.clear();
                    }
                    documents.insert(request.query.clone(), document);
                }
            }
        }
        request.parsed_query()
    }

    /// How many documents are kept.
    pub fn len(&self) -> usize {
        self.documents.lock().expect("document cache lock").len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_document_is_kept_once_and_comes_back_whole() {
        let cache = DocumentCache::default();
        let query = "query($a: ID!) { anime(id: $a) { id title } }";
        let first = format!("{:?}", cache.parsed(&mut Request::new(query)).unwrap());
        let second = format!("{:?}", cache.parsed(&mut Request::new(query)).unwrap());
        assert_eq!(first, second);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn unparsable_and_long_documents_are_not_kept() {
        let cache = DocumentCache::default();
        assert!(cache.parsed(&mut Request::new("query {")).is_err());
        let long = format!("{{ {} }}", "id ".repeat(MAX_QUERY_BYTES));
        assert!(cache.parsed(&mut Request::new(long)).is_ok());
        assert!(cache.is_empty());
    }

    #[test]
    fn a_full_cache_starts_again() {
        let cache = DocumentCache::default();
        for i in 0..=CAPACITY {
            cache
                .parsed(&mut Request::new(format!("{{ a{i}: id }}")))
                .unwrap();
        }
        assert_eq!(cache.len(), 1);
    }
}
