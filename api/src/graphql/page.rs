//! Relay-style pages: `edges { cursor node }`, `pageInfo`, `totalCount`, with opaque
//! offset cursors.

use async_graphql::SimpleObject;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::types::{AnimeNode, CommentNode};
use crate::domain::Page;
use crate::{Error, Result};

/// The cursor of the item at `offset`.
pub fn cursor(offset: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("offset:{offset}"))
}

/// The offset right after the item of cursor `after` (0 without one).
pub fn start_after(after: Option<&str>) -> Result<i64> {
    let Some(after) = after else { return Ok(0) };
    let bad = || Error::bad_input("after: not a cursor of this list");
    let text = URL_SAFE_NO_PAD.decode(after).map_err(|_| bad())?;
    let text = String::from_utf8(text).map_err(|_| bad())?;
    let n: i64 = text
        .strip_prefix("offset:")
        .and_then(|n| n.parse().ok())
        .filter(|n| *n >= 0)
        .ok_or_else(bad)?;
    Ok(n + 1)
}

/// Where a page sits in its list.
#[derive(Debug, Clone, SimpleObject)]
pub struct PageInfo {
    /// More items follow.
    pub has_next_page: bool,
    /// Items precede.
    pub has_previous_page: bool,
    /// Cursor of the first edge.
    pub start_cursor: Option<String>,
    /// Cursor of the last edge.
    pub end_cursor: Option<String>,
}

pub(crate) fn page_info(offset: i64, len: usize, total: i64) -> PageInfo {
    let len = len as i64;
    PageInfo {
        has_next_page: offset + len < total,
        has_previous_page: offset > 0,
        start_cursor: (len > 0).then(|| cursor(offset)),
        end_cursor: (len > 0).then(|| cursor(offset + len - 1)),
    }
}

macro_rules! connection {
    ($conn:ident, $edge:ident, $node:ident, $doc:literal) => {
        #[doc = concat!("An edge of ", $doc, ".")]
        #[derive(Debug, Clone, SimpleObject)]
        pub struct $edge {
            /// Opaque position, for `after`.
            pub cursor: String,
            /// The item.
            pub node: $node,
        }

        #[doc = concat!("A page of ", $doc, ".")]
        #[derive(Debug, Clone, SimpleObject)]
        pub struct $conn {
            /// The items with their cursors.
            pub edges: Vec<$edge>,
            /// Where this page sits.
            pub page_info: PageInfo,
            /// How many items match in all.
            pub total_count: i64,
        }

        impl<T: Into<$node>> From<Page<T>> for $conn {
            fn from(page: Page<T>) -> Self {
                let info = page_info(page.offset, page.items.len(), page.total);
                let edges = page
                    .items
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| $edge {
                        cursor: cursor(page.offset + i as i64),
                        node: item.into(),
                    })
                    .collect();
                $conn {
                    edges,
                    page_info: info,
                    total_count: page.total,
                }
            }
        }
    };
}

connection!(AnimeConnection, AnimeEdge, AnimeNode, "anime");
connection!(CommentConnection, CommentEdge, CommentNode, "comments");

/// A page of the comments on `target` for the caller: the one resolver body behind
/// `Query.comments`, `Anime.comments` and `Episode.comments`.
pub(crate) async fn comment_page(
    ctx: &async_graphql::Context<'_>,
    target: crate::domain::CommentTarget,
    first: Option<i32>,
    after: Option<String>,
) -> async_graphql::Result<CommentConnection> {
    use async_graphql::ErrorExtensions;
    let (domain, caller) = super::parts(ctx);
    let limit = domain.page_size(first).map_err(|e| e.extend())?;
    let offset = start_after(after.as_deref()).map_err(|e| e.extend())?;
    Ok(domain
        .comments(caller, target, offset, limit)
        .await
        .map_err(|e| e.extend())?
        .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        assert_eq!(start_after(Some(&cursor(41))).unwrap(), 42);
        assert_eq!(start_after(None).unwrap(), 0);
        assert!(start_after(Some("nope")).is_err());
        assert!(start_after(Some(&URL_SAFE_NO_PAD.encode("offset:-3"))).is_err());
    }
}
