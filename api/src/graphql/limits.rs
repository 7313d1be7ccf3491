//! Checks of a query document that async-graphql has no switch for: the number of aliases,
//! of operations and of `_entities` representations; and the size rule of the lists that
//! are not Relay pages. (Depth and complexity are the schema's `limit_depth` and
//! `limit_complexity`; what a request may use while it runs is [`super::budget`].) The
//! document is the request's own parsed one (`Request::parsed_query`), so it is parsed
//! once per request; a document that does not parse is not checked here: the executor
//! reports its syntax error.
//!
//! Cost: a field costs 1 plus its children; a list costs its size times its children, so
//! a nested fan-out multiplies. Relay pages count `first` (default 20); the plain lists
//! (`Anime.episodes`, `Query.episodes`, `Organization.members`, `User.subscriptions`)
//! count `first`, which defaults to, and may not exceed, [`LIST_CAP`]: the most items such
//! a list answers (`offset` skips items). `_entities` counts its whole selection once per
//! representation.

use std::time::Duration;

use async_graphql::Variables;
use async_graphql::parser::Positioned;
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationDefinition, OperationType, Selection,
    SelectionSet,
};

use crate::{Error, Result};

/// The most items a plain (not paged) list answers, and what it costs when `first` is not
/// given.
pub const LIST_CAP: usize = 100;

/// The size a capped list answers for `first`: clamped to 1 to [`LIST_CAP`] (a negative
/// `first` is 1), `default` without one.
pub fn clamped_size(first: Option<i32>, default: usize) -> usize {
    first.map_or(default, |n| {
        usize::try_from(n).unwrap_or(1).clamp(1, LIST_CAP)
    })
}

/// The complexity of a plain list: `first` (default [`LIST_CAP`]) times its children.
pub fn list_cost(first: Option<i32>, child_complexity: usize) -> usize {
    clamped_size(first, LIST_CAP).saturating_mul(child_complexity)
}

/// The items of a plain list that `first` (1 to [`LIST_CAP`], default [`LIST_CAP`]) and
/// `offset` (default 0) select.
pub fn slice<T>(items: Vec<T>, first: Option<i32>, offset: Option<i32>) -> Result<Vec<T>> {
    let first = match first {
        None => LIST_CAP,
        Some(n) if (1..=LIST_CAP as i32).contains(&n) => n as usize,
        Some(_) => {
            return Err(Error::bad_input(format!(
                "first: 1 to {LIST_CAP} items of a list"
            )));
        }
    };
    let offset = match offset {
        None => 0,
        Some(n) if n >= 0 => n as usize,
        Some(_) => return Err(Error::bad_input("offset: not negative")),
    };
    Ok(items.into_iter().skip(offset).take(first).collect())
}

/// The limits a request is checked against.
#[derive(Debug, Clone, Copy)]
pub struct DocumentLimits {
    /// Most aliases in the document (operations and fragments).
    pub max_aliases: usize,
    /// Most operations defined in the document.
    pub max_operations: usize,
    /// Most `_entities` representations in one document.
    pub max_entities: usize,
    /// Highest complexity (the schema's limit, applied again to `_entities` selections
    /// multiplied by their representations).
    pub max_complexity: usize,
    /// Longest time the query operations of one HTTP request may run.
    pub request_timeout: Duration,
    /// Most resolvers of one operation that run at once (so most database statements).
    pub resolver_concurrency: usize,
}

/// What [`check`] learnt of a document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shape {
    /// Representations asked of `_entities`, all occurrences together.
    pub entities: usize,
    /// Whether the operation that runs is a mutation.
    pub mutation: bool,
    /// The first root field of the operation that runs, for metrics labels.
    pub root_field: Option<String>,
}

/// The representations of every `_entities` field in `set` (literal lists or variables).
fn count_entities(set: &Positioned<SelectionSet>, variables: &Variables) -> usize {
    set.node
        .items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(field) => {
                let own = if field.node.name.node == "_entities" {
                    field
                        .node
                        .get_argument("representations")
                        .and_then(|value| {
                            value
                                .node
                                .clone()
                                .into_const_with(|name| variables.get(&name).cloned().ok_or(()))
                                .ok()
                        })
                        .map_or(0, |value| match value {
                            async_graphql::Value::List(items) => items.len(),
                            _ => 0,
                        })
                } else {
                    0
                };
                own + count_entities(&field.node.selection_set, variables)
            }
            Selection::InlineFragment(inline) => {
                count_entities(&inline.node.selection_set, variables)
            }
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

fn count_aliases(set: &Positioned<SelectionSet>) -> usize {
    set.node
        .items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(field) => {
                usize::from(field.node.alias.is_some()) + count_aliases(&field.node.selection_set)
            }
            Selection::InlineFragment(inline) => count_aliases(&inline.node.selection_set),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

/// Checks `document` (with its `variables`) against `limits`; `operation` names the
/// operation that runs (needed when the document defines several).
pub fn check(
    document: &ExecutableDocument,
    operation: Option<&str>,
    variables: &Variables,
    limits: &DocumentLimits,
) -> Result<Shape> {
    let operations: Vec<_> = match &document.operations {
        DocumentOperations::Single(op) => vec![op],
        DocumentOperations::Multiple(ops) => ops.values().collect(),
    };
    if operations.len() > limits.max_operations {
        return Err(Error::bad_input(format!(
            "the document defines {} operations; at most {} are allowed",
            operations.len(),
            limits.max_operations
        )));
    }
    let aliases: usize = operations
        .iter()
        .map(|op| count_aliases(&op.node.selection_set))
        .chain(
            document
                .fragments
                .values()
                .map(|f| count_aliases(&f.node.selection_set)),
        )
        .sum();
    if aliases > limits.max_aliases {
        return Err(Error::bad_input(format!(
            "the document uses {aliases} aliases; at most {} are allowed",
            limits.max_aliases
        )));
    }
    let entities: usize = operations
        .iter()
        .map(|op| &op.node.selection_set)
        .chain(document.fragments.values().map(|f| &f.node.selection_set))
        .map(|set| count_entities(set, variables))
        .sum();
    if entities > limits.max_entities {
        return Err(Error::bad_input(format!(
            "the document asks _entities for {entities} representations; at most {} are allowed",
            limits.max_entities
        )));
    }
    let selected = selected(document, operation);
    Ok(Shape {
        entities,
        mutation: selected.is_some_and(|op| op.node.ty == OperationType::Mutation),
        root_field: selected.and_then(|op| {
            op.node
                .selection_set
                .node
                .items
                .iter()
                .find_map(|item| match &item.node {
                    Selection::Field(field) => Some(field.node.name.node.to_string()),
                    _ => None,
                })
        }),
    })
}

/// The operation `name` of `document` (or its first, when no name is given).
fn selected<'a>(
    document: &'a ExecutableDocument,
    name: Option<&str>,
) -> Option<&'a Positioned<OperationDefinition>> {
    match (&document.operations, name) {
        (DocumentOperations::Single(op), _) => Some(op),
        (DocumentOperations::Multiple(ops), Some(name)) => ops
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, op)| op),
        (DocumentOperations::Multiple(ops), None) => ops.values().next(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: DocumentLimits = DocumentLimits {
        max_aliases: 2,
        max_operations: 1,
        max_entities: 3,
        max_complexity: 100,
        request_timeout: Duration::from_secs(1),
        resolver_concurrency: 1,
    };

    fn check(query: &str, limits: DocumentLimits) -> Result<Shape> {
        check_with(query, None, &Variables::default(), &limits)
    }

    fn check_with(
        query: &str,
        operation: Option<&str>,
        variables: &Variables,
        limits: &DocumentLimits,
    ) -> Result<Shape> {
        let document = async_graphql::parser::parse_query(query).expect("a valid document");
        super::check(&document, operation, variables, limits)
    }

    #[test]
    fn entities_representations_are_counted_in_literals_and_variables() {
        let q =
            "{ _entities(representations: [{__typename: \"Anime\", id: \"1\"}]) { __typename } }";
        assert_eq!(check(q, LIMITS).unwrap().entities, 1);
        let q = "query($r: [_Any!]!) { _entities(representations: $r) { __typename } }";
        let vars = |n: usize| {
            Variables::from_json(serde_json::json!({"r": vec![serde_json::json!({}); n]}))
        };
        assert_eq!(check_with(q, None, &vars(3), &LIMITS).unwrap().entities, 3);
        assert!(check_with(q, None, &vars(4), &LIMITS).is_err());
    }

    #[test]
    fn plain_lists_are_capped_and_cost_their_size() {
        assert_eq!(list_cost(None, 3), LIST_CAP * 3);
        assert_eq!(list_cost(Some(5), 3), 15);
        assert_eq!(list_cost(Some(500), 1), LIST_CAP);
        assert_eq!(clamped_size(None, 10), 10);
        assert_eq!(clamped_size(Some(0), 10), 1);
        assert_eq!(clamped_size(Some(-4), 10), 1);
        assert_eq!(clamped_size(Some(101), 10), LIST_CAP);
        let items: Vec<i32> = (1..=150).collect();
        assert_eq!(slice(items.clone(), None, None).unwrap().len(), LIST_CAP);
        assert_eq!(
            slice(items.clone(), Some(10), Some(145)).unwrap(),
            vec![146, 147, 148, 149, 150]
        );
        assert!(slice(items.clone(), Some(0), None).is_err());
        assert!(slice(items.clone(), Some(LIST_CAP as i32 + 1), None).is_err());
        assert!(slice(items, None, Some(-1)).is_err());
        let limits = DocumentLimits {
            max_operations: 2,
            ..LIMITS
        };
        let none = Variables::default();
        assert!(check("mutation { a }", LIMITS).unwrap().mutation);
        let two = "query A { a } mutation B { b }";
        assert!(!check_with(two, Some("A"), &none, &limits).unwrap().mutation);
        assert!(check_with(two, Some("B"), &none, &limits).unwrap().mutation);
    }

    #[test]
    fn aliases_are_counted_everywhere() {
        assert!(check("{ a: me { id } b: me { id } }", LIMITS).is_ok());
        assert!(check("{ a: me { id } b: me { id } c: me { id } }", LIMITS).is_err());
        assert!(
            check(
                "{ ...F } fragment F on Query { a: me { x: id } y: me { id } }",
                LIMITS
            )
            .is_err()
        );
    }

    #[test]
    fn operations_are_counted() {
        assert!(check("query A { me { id } } query B { me { id } }", LIMITS).is_err());
        assert_eq!(
            check("query A { me { id } }", LIMITS)
                .unwrap()
                .root_field
                .as_deref(),
            Some("me")
        );
    }
}
