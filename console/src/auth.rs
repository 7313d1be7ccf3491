//! Who may use the console: operators and admins, signed in with a token of the API.
//!
//! Signing in takes an email and password, which [`api_login`] hands to the API's `login`
//! mutation for a token, or a token of the API pasted as it is (from an external issuer's
//! flow, say); either way the token is verified with the API's own [`TokenAuthority`]
//! (same secret, issuer and audience): the console keeps no passwords. Its role must
//! be `OPERATOR` or `ADMIN` (`Role::at_least(Role::Operator)`): anyone else gets a 403 page
//! saying so. A session then lives in the console's memory, named by an HttpOnly,
//! SameSite=Strict cookie of 244 random bits, until the token's expiry or the session TTL,
//! whichever comes first (a restart of the console signs everyone out). Each session has
//! its own CSRF token, which every form that writes carries and [`Operator::check_csrf`]
//! compares in constant time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anineplus_api::auth::Viewer;
use anineplus_api::auth::jwt::TokenAuthority;
use anineplus_api::domain::Role;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use uuid::Uuid;

use crate::{Error, Result, html};

/// The session cookie's name.
pub const COOKIE: &str = "anineplus_console";

/// A signed-in operator's session.
#[derive(Debug, Clone)]
struct Session {
    user: Uuid,
    role: Role,
    csrf: String,
    expires: Instant,
}

/// The sessions of this console process.
#[derive(Debug)]
pub struct Sessions {
    tokens: TokenAuthority,
    ttl: Duration,
    secure: bool,
    map: Mutex<HashMap<String, Session>>,
}

/// Why a token did not open a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not a valid token of the API (signature, issuer, audience, expiry).
    Invalid,
    /// A valid token whose role may not use the console.
    Role(Role),
}

fn random() -> String {
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

/// The `exp` claim of a token already verified (seconds since the epoch).
fn expiry(token: &str) -> Option<u64> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice::<serde_json::Value>(&bytes).ok()?["exp"].as_u64()
}

impl Sessions {
    /// Sessions verifying tokens with `tokens`, lasting at most `ttl`.
    pub fn new(tokens: TokenAuthority, ttl: Duration, secure: bool) -> Self {
        Sessions {
            tokens,
            ttl,
            secure,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Opens a session for `token`: returns the session id.
    pub fn sign_in(&self, token: &str) -> std::result::Result<String, Refusal> {
        let token = token.trim();
        let bearer = format!("Bearer {token}");
        let Ok(Viewer::User { id, role }) = self.tokens.viewer(Some(&bearer)) else {
            return Err(Refusal::Invalid);
        };
        if !role.at_least(Role::Operator) {
            return Err(Refusal::Role(role));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let left =
            expiry(token).map_or(self.ttl, |exp| Duration::from_secs(exp.saturating_sub(now)));
        let session = Session {
            user: id,
            role,
            csrf: random(),
            expires: Instant::now() + left.min(self.ttl),
        };
        let sid = random();
        tracing::info!(user = %id, role = role.as_str(), "signed in");
        let mut map = self.map.lock().expect("sessions lock");
        map.retain(|_, s| s.expires > Instant::now());
        map.insert(sid.clone(), session);
        Ok(sid)
    }

    /// Ends a session.
    pub fn sign_out(&self, sid: &str) {
        self.map.lock().expect("sessions lock").remove(sid);
    }

    /// The `Set-Cookie` value for session `sid` (empty: clears it).
    pub fn cookie(&self, sid: &str) -> String {
        let age = if sid.is_empty() {
            0
        } else {
            self.ttl.as_secs()
        };
        format!(
            "{COOKIE}={sid}; Path=/; HttpOnly; SameSite=Strict; Max-Age={age}{}",
            if self.secure { "; Secure" } else { "" }
        )
    }

    fn get(&self, sid: &str) -> Option<Session> {
        let map = self.map.lock().expect("sessions lock");
        map.get(sid).filter(|s| s.expires > Instant::now()).cloned()
    }
}

/// The session id in a request's cookies.
pub fn session_id(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// The signed-in operator of a request; a request without a session is sent to `/sign-in`.
#[derive(Debug, Clone)]
pub struct Operator {
    /// The user id (`sub` of the token).
    pub id: Uuid,
    /// Their role (OPERATOR or ADMIN).
    pub role: Role,
    /// The session's CSRF token, for the forms of the page.
    pub csrf: String,
}

impl Operator {
    /// Who, as the audit log and the navigation show it.
    pub fn actor(&self) -> String {
        format!("user {}", self.id)
    }

    /// The text of the navigation.
    pub fn who(&self) -> String {
        format!("{} ({})", self.actor(), self.role.as_str())
    }

    /// Whether `token` (from a form) is this session's CSRF token.
    pub fn check_csrf(&self, token: &str) -> Result<()> {
        let (a, b) = (self.csrf.as_bytes(), token.as_bytes());
        let same = a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0;
        if same { Ok(()) } else { Err(Error::Csrf) }
    }

    /// The hidden CSRF field of a form.
    pub fn csrf_field(&self) -> String {
        html::hidden("csrf", &self.csrf)
    }
}

/// Anything holding the sessions (the console's state).
pub trait HasSessions {
    /// The sessions.
    fn sessions(&self) -> &Sessions;
}

impl<S: HasSessions + Send + Sync> FromRequestParts<Arc<S>> for Operator {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<S>,
    ) -> std::result::Result<Self, Response> {
        let session = session_id(parts).and_then(|sid| state.sessions().get(&sid));
        match session {
            Some(s) => Ok(Operator {
                id: s.user,
                role: s.role,
                csrf: s.csrf,
            }),
            None => Err(Redirect::to("/sign-in").into_response()),
        }
    }
}

/// Why the API gave no token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginFailure {
    /// The API refused the credentials (its message).
    Refused(String),
    /// The API did not answer or answered nonsense.
    Unavailable(String),
}

const LOGIN: &str = "mutation($input: LoginInput!) { login(input: $input) { token } }";

/// A token from the API's `login` mutation at `api_url` (`http://host:port`).
pub async fn api_login(
    http: &reqwest::Client,
    api_url: &str,
    email: &str,
    password: &str,
) -> std::result::Result<String, LoginFailure> {
    let body = serde_json::json!({
        "query": LOGIN,
        "variables": { "input": { "email": email, "password": password } },
    });
    let response = http
        .post(format!("{api_url}/graphql"))
        .json(&body)
        .send()
        .await
        .map_err(|e| {
            LoginFailure::Unavailable(format!("the API at {api_url} does not answer: {e}"))
        })?;
    let answer: serde_json::Value = response
        .json()
        .await
        .map_err(|e| LoginFailure::Unavailable(format!("the API's answer is not JSON: {e}")))?;
    if let Some(token) = answer["data"]["login"]["token"].as_str() {
        return Ok(token.to_owned());
    }
    let message = answer["errors"][0]["message"]
        .as_str()
        .unwrap_or("the API returned no token")
        .to_owned();
    Err(LoginFailure::Refused(message))
}

/// The sign-in page, with a message.
pub fn sign_in_page(message: &str) -> String {
    format!(
        "<h1>AnineePlus operators' console</h1>{}<form method=\"post\" action=\"/sign-in\">\
<p><label>Email <input type=\"email\" id=\"email\" name=\"email\" autocomplete=\"username\"></label> \
<label>Password <input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\"></label></p>\
<p>or <label for=\"token\">a token of the API</label><br>\
<textarea id=\"token\" name=\"token\" rows=\"4\" cols=\"80\"></textarea></p>\
<p><button type=\"submit\" id=\"sign-in\">Sign in</button></p></form>\
<p>Operators (role OPERATOR) and admins only. The email and password go to the API's <code>login</code>; the console keeps neither.</p>",
        if message.is_empty() {
            String::new()
        } else {
            format!("<p class=\"error\">{}</p>", html::escape(message))
        }
    )
}

/// The response to a refused sign-in.
pub fn refused(refusal: &Refusal) -> Response {
    let (status, message) = match refusal {
        Refusal::Invalid => (
            StatusCode::UNAUTHORIZED,
            "That is not a valid token of the API (signature, issuer, audience or expiry): sign in to the API again and paste its token.".to_owned(),
        ),
        Refusal::Role(role) => (
            StatusCode::FORBIDDEN,
            format!(
                "Forbidden: your role is {}. The console is for operators (role OPERATOR) and admins (ADMIN) only; ask an admin for the OPERATOR role.",
                role.as_str()
            ),
        ),
    };
    (status, html::bare("Sign in", &sign_in_page(&message))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions() -> Sessions {
        let tokens = TokenAuthority::hs256(
            b"0123456789abcdef0123456789abcdef",
            "anineplus",
            "anineplus-api",
            600,
        );
        Sessions::new(tokens, Duration::from_secs(3600), false)
    }

    #[test]
    fn operators_and_admins_sign_in_others_are_refused() {
        let s = sessions();
        let issue = |role| s.tokens.issue(Uuid::new_v4(), role).unwrap();
        assert!(s.sign_in(&issue(Role::Operator)).is_ok());
        assert!(s.sign_in(&issue(Role::Admin)).is_ok());
        assert_eq!(
            s.sign_in(&issue(Role::User)),
            Err(Refusal::Role(Role::User))
        );
        assert_eq!(
            s.sign_in(&issue(Role::Moderator)),
            Err(Refusal::Role(Role::Moderator))
        );
        assert_eq!(s.sign_in("not.a.token"), Err(Refusal::Invalid));
        let other = TokenAuthority::hs256(
            b"another-secret-another-secret-xx",
            "anineplus",
            "anineplus-api",
            600,
        );
        assert_eq!(
            s.sign_in(&other.issue(Uuid::new_v4(), Role::Admin).unwrap()),
            Err(Refusal::Invalid)
        );
    }

    #[test]
    fn a_session_ends_with_its_token_and_csrf_is_checked() {
        let s = sessions();
        let sid = s
            .sign_in(&s.tokens.issue(Uuid::new_v4(), Role::Operator).unwrap())
            .unwrap();
        let session = s.get(&sid).unwrap();
        assert!(
            session.expires <= Instant::now() + Duration::from_secs(601),
            "bounded by the token's exp"
        );
        let op = Operator {
            id: session.user,
            role: session.role,
            csrf: session.csrf.clone(),
        };
        assert!(op.check_csrf(&session.csrf).is_ok());
        assert!(matches!(op.check_csrf("x"), Err(Error::Csrf)));
        assert!(s.cookie(&sid).contains("HttpOnly; SameSite=Strict"));
        s.sign_out(&sid);
        assert!(s.get(&sid).is_none());
    }
}
