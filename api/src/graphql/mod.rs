//! The GraphQL schema: [`query`] and [`mutation`] roots, the object types of [`types`],
//! the inputs of [`inputs`], Relay-style pages in [`page`], the document checks
//! async-graphql does not have built in ([`limits`]) and what an operation may use while it
//! runs ([`budget`]); [`documents`] keeps the parsed documents of recent requests.
//! Resolvers stay thin: they parse ids,
//! call the [`crate::domain::Domain`] and wrap its rows.
//!
//! It is an Apollo Federation v2 subgraph: `User`, `Anime` and `Episode` are entities
//! keyed by `id` (`_service { sdl }`, `_entities`). The root types are named `Query` and
//! `Mutation`: a federation SDL has no `schema { ... }` block, so composition (Apollo's
//! `composeServices`, a gateway, a router) finds the roots by those default names only.

pub mod budget;
pub mod documents;
pub mod inputs;
pub mod limits;
pub mod mutation;
pub mod page;
pub mod query;
pub mod search;
pub mod types;

use async_graphql::{Context, EmptySubscription, MergedObject, Schema};

use crate::domain::{Caller, Domain};

/// The query root as GraphQL names it: the fields of [`query::QueryRoot`].
#[derive(MergedObject, Default)]
#[graphql(name = "Query")]
pub struct Query(query::QueryRoot);

/// The mutation root as GraphQL names it: the fields of [`mutation::MutationRoot`].
#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct Mutation(mutation::MutationRoot);

/// The API's schema type.
pub type ApiSchema = Schema<Query, Mutation, EmptySubscription>;

/// Limits and switches of the schema.
#[derive(Debug, Clone, Copy)]
pub struct SchemaOptions {
    /// Deepest query.
    pub max_depth: usize,
    /// Highest complexity.
    pub max_complexity: usize,
    /// Introspection and field suggestions (dev only).
    pub introspection: bool,
}

/// Builds the schema over `domain`.
pub fn build(domain: Domain, options: SchemaOptions) -> ApiSchema {
    let mut builder = Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .data(domain)
        .enable_federation()
        .limit_depth(options.max_depth)
        .limit_complexity(options.max_complexity)
        .extension(budget::Budget);
    if !options.introspection {
        builder = builder.disable_introspection().disable_suggestions();
    }
    builder.finish()
}

/// The domain and the caller of a resolver.
pub(crate) fn parts<'a>(ctx: &Context<'a>) -> (&'a Domain, &'a Caller) {
    (
        ctx.data_unchecked::<Domain>(),
        ctx.data_unchecked::<Caller>(),
    )
}

/// The SDL of the schema (for docs and clients).
pub fn sdl(schema: &ApiSchema) -> String {
    schema.sdl()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema_sdl() -> String {
        Schema::build(Query::default(), Mutation::default(), EmptySubscription)
            .enable_federation()
            .finish()
            .sdl()
    }

    #[test]
    fn the_analytics_fields_have_their_documented_signatures() {
        let sdl = schema_sdl();
        for line in [
            "trendingAnime(first: Int = 10, window: TrendingWindow = CURRENT_HOUR): [TrendingAnime!]!",
            "subscriptionCounts: [PlanCount!]!",
            "commentCount: Int!",
            "active: Int!",
        ] {
            assert!(sdl.contains(line), "the SDL lacks {line:?}:\n{sdl}");
        }
        for value in ["CURRENT_HOUR", "LAST_HOUR", "LAST_24_HOURS"] {
            assert!(sdl.contains(&format!("\t{value}\n")), "{value}:\n{sdl}");
        }
    }
}
