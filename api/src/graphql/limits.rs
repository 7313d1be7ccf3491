//! Checks of a query document that async-graphql has no switch for: the number of aliases
//! and of operations. (Depth and complexity are the schema's `limit_depth` and
//! `limit_complexity`.) A document that does not parse passes here: the executor reports
//! its syntax error.

use async_graphql::parser::types::{DocumentOperations, Selection, SelectionSet};
use async_graphql::parser::{Positioned, parse_query};

use crate::{Error, Result};

/// The limits a document is checked against.
#[derive(Debug, Clone, Copy)]
pub struct DocumentLimits {
    /// Most aliases in the document (operations and fragments).
    pub max_aliases: usize,
    /// Most operations defined in the document.
    pub max_operations: usize,
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

/// Checks `query` against `limits`.
pub fn check(query: &str, limits: DocumentLimits) -> Result<()> {
    let Ok(document) = parse_query(query) else {
        return Ok(());
    };
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
    Ok(())
}

/// The first root field of the operation `name` (or the only one), for metrics labels.
pub fn root_field(query: &str, name: Option<&str>) -> Option<String> {
    let document = parse_query(query).ok()?;
    let op = match (&document.operations, name) {
        (DocumentOperations::Single(op), _) => op,
        (DocumentOperations::Multiple(ops), Some(name)) => {
            ops.iter().find(|(n, _)| n.as_str() == name)?.1
        }
        (DocumentOperations::Multiple(ops), None) => ops.values().next()?,
    };
    op.node
        .selection_set
        .node
        .items
        .iter()
        .find_map(|item| match &item.node {
            Selection::Field(field) => Some(field.node.name.node.to_string()),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: DocumentLimits = DocumentLimits {
        max_aliases: 2,
        max_operations: 1,
    };

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
            root_field("query A { me { id } }", None).as_deref(),
            Some("me")
        );
    }
}
