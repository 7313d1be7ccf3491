//! The authentication and authorisation layer in front of every route: who the caller is
//! (HTTP basic credentials), and which operation on which resource the route needs.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::{Access, Caller, Operation, Resource};
use crate::error::{Error, Result};

/// The caller of a request and the access rules, for handlers that filter what they show
/// (subject lists, schemas by id).
#[derive(Clone)]
pub(crate) struct Grant {
    pub(crate) access: Arc<Access>,
    pub(crate) caller: Caller,
}

impl Grant {
    /// Whether the caller may read `subject`.
    pub(crate) fn reads(&self, subject: &str) -> bool {
        self.access.allows(
            &self.caller,
            Operation::Read,
            &Resource::Subject(subject.to_owned()),
        )
    }

    /// Ok when the caller may read one of `subjects` (the subjects a schema is registered
    /// under); a schema under no subject any more needs read access to the global config.
    pub(crate) fn reads_any(&self, subjects: &[String]) -> Result<()> {
        if subjects.iter().any(|s| self.reads(s)) {
            return Ok(());
        }
        let resource = match subjects.first() {
            Some(subject) => Resource::Subject(subject.clone()),
            None => Resource::Config,
        };
        self.access
            .authorize(&self.caller, Operation::Read, &resource)
    }
}

/// What a route needs of its caller.
#[derive(Debug, PartialEq, Eq)]
enum Need {
    /// Nothing (`/`, `/schemas/types`: health probes).
    Nothing,
    /// A caller who may read something; the handler shows only what they may read.
    Reader,
    /// This operation on this resource.
    Permission(Operation, Resource),
}

/// The permission a request needs, from its method and path (subjects percent-decoded).
fn need(method: &Method, path: &str) -> Need {
    let segments: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let reads = method == Method::GET || method == Method::HEAD;
    let operation = if reads {
        Operation::Read
    } else {
        Operation::Write
    };
    let subject = |s: &str| Resource::Subject(s.to_owned());
    match segments.as_slice() {
        [""] | ["schemas", "types"] => Need::Nothing,
        ["schemas", "ids", ..] | ["subjects"] => Need::Reader,
        // POST /subjects/{s} looks a schema up: a read.
        ["subjects", s] if method == Method::POST => Need::Permission(Operation::Read, subject(s)),
        ["subjects", s, ..] => Need::Permission(operation, subject(s)),
        ["compatibility", "subjects", s, ..] => Need::Permission(Operation::Read, subject(s)),
        ["config" | "mode", s] => Need::Permission(operation, subject(s)),
        _ => Need::Permission(operation, Resource::Config),
    }
}

/// Authenticates the caller and checks the route's permission; 401 (with
/// `WWW-Authenticate`) or 403 in Confluent's error format otherwise.
pub(crate) async fn guard(
    State(access): State<Arc<Access>>,
    mut request: Request,
    next: Next,
) -> Response {
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or(""));
    let checked = access.authenticate(header).and_then(|caller| {
        match need(request.method(), request.uri().path()) {
            Need::Nothing => {}
            Need::Reader => {
                if caller == Caller::Anonymous && !access.anonymous_read() {
                    return Err(Error::Unauthorized(
                        "reading needs credentials (HTTP basic authentication)".to_owned(),
                    ));
                }
            }
            Need::Permission(operation, resource) => {
                access.authorize(&caller, operation, &resource)?
            }
        }
        Ok(caller)
    });
    match checked {
        Ok(caller) => {
            request.extensions_mut().insert(Grant {
                access: Arc::clone(&access),
                caller,
            });
            next.run(request).await
        }
        Err(error) => {
            let unauthorized = matches!(error, Error::Unauthorized(_));
            let mut response = error.into_response();
            if unauthorized {
                response.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"schema registry\""),
                );
            }
            response
        }
    }
}

/// `%XX` escapes decoded (a subject may hold `/` as `%2F`); invalid escapes stay as written.
fn percent_decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_need_the_permission_of_what_they_touch() {
        let subject = |s: &str| Resource::Subject(s.to_owned());
        let cases = [
            (Method::GET, "/schemas/types", Need::Nothing),
            (Method::GET, "/", Need::Nothing),
            (Method::GET, "/schemas/ids/3", Need::Reader),
            (Method::GET, "/subjects", Need::Reader),
            (
                Method::POST,
                "/subjects/anime-value/versions",
                Need::Permission(Operation::Write, subject("anime-value")),
            ),
            (
                Method::POST,
                "/subjects/a%2Fb",
                Need::Permission(Operation::Read, subject("a/b")),
            ),
            (
                Method::DELETE,
                "/subjects/anime-value",
                Need::Permission(Operation::Write, subject("anime-value")),
            ),
            (
                Method::GET,
                "/subjects/anime-value/versions/latest",
                Need::Permission(Operation::Read, subject("anime-value")),
            ),
            (
                Method::POST,
                "/compatibility/subjects/anime-value/versions/latest",
                Need::Permission(Operation::Read, subject("anime-value")),
            ),
            (
                Method::PUT,
                "/mode",
                Need::Permission(Operation::Write, Resource::Config),
            ),
            (
                Method::GET,
                "/config",
                Need::Permission(Operation::Read, Resource::Config),
            ),
            (
                Method::PUT,
                "/config/anime-value",
                Need::Permission(Operation::Write, subject("anime-value")),
            ),
            (
                Method::DELETE,
                "/nowhere",
                Need::Permission(Operation::Write, Resource::Config),
            ),
        ];
        for (method, path, expected) in cases {
            assert_eq!(need(&method, path), expected, "{method} {path}");
        }
    }
}
