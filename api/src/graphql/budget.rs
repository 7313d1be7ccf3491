//! What one operation may use while it runs: a few resolvers at a time (so a fan-out of
//! thousands of fields cannot take the whole database pool from other clients), and
//! `_entities` selections counted once per representation against the complexity limit.
//!
//! The HTTP edge puts a [`RequestBudget`] into each operation's data; the schema's
//! [`Budget`] extension enforces it. (The deadline of a request is the edge's: it stops
//! query operations with `TIMEOUT`.)
//!
//! How the resolver cap avoids deadlocks: a field with a selection set takes a permit when
//! it starts resolving and gives it back as soon as its first child (or list item) starts,
//! that is once its own resolver (the one that reads the database) has returned, or when
//! it ends. A permit is therefore never held while waiting for another one, and at most
//! `resolver_concurrency` resolvers of one operation await the database at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextResolve, NextValidation, ResolveInfo,
};
use async_graphql::{QueryPathNode, QueryPathSegment, ServerError, ServerResult, ValidationResult};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The allowance of one operation.
pub struct RequestBudget {
    permits: Arc<Semaphore>,
    held: Mutex<HashMap<String, OwnedSemaphorePermit>>,
    entities: usize,
    max_complexity: usize,
}

impl RequestBudget {
    /// At most `resolver_concurrency` resolvers at once; `entities` representations asked
    /// of `_entities` (their selection is counted that many times against
    /// `max_complexity`).
    pub fn new(resolver_concurrency: usize, entities: usize, max_complexity: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(resolver_concurrency.max(1))),
            held: Mutex::new(HashMap::new()),
            entities,
            max_complexity,
        }
    }

    /// Gives back the permit of the field `node` belongs to (its resolver has returned,
    /// since its children or items are being resolved).
    fn release_parent(&self, node: &QueryPathNode<'_>) {
        if let Some(parent) = node
            .parents()
            .find(|p| matches!(p.segment, QueryPathSegment::Name(_)))
        {
            self.held
                .lock()
                .expect("budget lock")
                .remove(&parent.to_string());
        }
    }
}

/// The extension that enforces each operation's [`RequestBudget`] (operations without one,
/// such as the schema's own SDL export, run unbounded).
pub struct Budget;

impl ExtensionFactory for Budget {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Budget)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for Budget {
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        if let Some(budget) = ctx.data_opt::<RequestBudget>()
            && budget.entities > 1
            && result.complexity.saturating_mul(budget.entities) > budget.max_complexity
        {
            return Err(vec![ServerError::new(
                format!(
                    "Query is too complex: its selection costs {} for each of {} _entities \
                     representations, more than {} in all",
                    result.complexity, budget.entities, budget.max_complexity
                ),
                None,
            )]);
        }
        Ok(result)
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<async_graphql::Value>> {
        let Some(budget) = ctx.data_opt::<RequestBudget>() else {
            return next.run(ctx, info).await;
        };
        budget.release_parent(info.path_node);
        let own = (matches!(info.path_node.segment, QueryPathSegment::Name(_))
            && !info.field.selection_set.node.items.is_empty()
            && !info.is_for_introspection)
            .then(|| info.path_node.to_string());
        if let Some(key) = &own {
            let permit = budget
                .permits
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            budget
                .held
                .lock()
                .expect("budget lock")
                .insert(key.clone(), permit);
        }
        let result = next.run(ctx, info).await;
        if let Some(key) = own {
            budget.held.lock().expect("budget lock").remove(&key);
        }
        result
    }
}
