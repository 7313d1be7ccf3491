//! JWTs: HS256 with the configured secret, the algorithm pinned, `exp`, `iss` and `aud`
//! required and checked, `nbf` checked when present (both with 5 s of leeway), claims
//! `sub` (user id) and `role`.
//!
//! Optionally, RS256 tokens of an external issuer are accepted too, verified with the key
//! of their `kid` from a JWKS URL ([`super::jwks`]), under the same claim rules. Each
//! algorithm is bound to its own key: an HS256 token is never checked against an RSA key
//! or the reverse, and every other algorithm (`none` included) is refused.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Viewer;
use crate::domain::Role;
use crate::{Error, Result};

/// The claims of our tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: String,
    /// Role at issue time.
    pub role: Role,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Issued at (seconds since the epoch).
    pub iat: u64,
    /// Expiry (seconds since the epoch).
    pub exp: u64,
}

/// Issues and verifies tokens.
#[derive(Clone)]
pub struct TokenAuthority {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    rs_validation: Validation,
    jwks: Option<super::jwks::Jwks>,
    issuer: String,
    audience: String,
    ttl_secs: u64,
}

impl std::fmt::Debug for TokenAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAuthority")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl TokenAuthority {
    /// An HS256 authority with `secret`.
    pub fn hs256(secret: &[u8], issuer: &str, audience: &str, ttl_secs: u64) -> Self {
        let pinned = |alg: Algorithm| {
            let mut validation = Validation::new(alg);
            validation.algorithms = vec![alg];
            validation.set_issuer(&[issuer]);
            validation.set_audience(&[audience]);
            validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            validation.leeway = 5;
            validation.validate_exp = true;
            // `nbf` (when present) with the same leeway: a token is not valid before it.
            validation.validate_nbf = true;
            validation
        };
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation: pinned(Algorithm::HS256),
            rs_validation: pinned(Algorithm::RS256),
            jwks: None,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            ttl_secs,
        }
    }

    /// Also accepts RS256 tokens signed by a key of `jwks`.
    pub fn with_jwks(mut self, jwks: super::jwks::Jwks) -> Self {
        self.jwks = Some(jwks);
        self
    }

    /// A signed token for `user` with `role`.
    pub fn issue(&self, user: Uuid, role: Role) -> Result<String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| Error::Internal(e.to_string()))?
            .as_secs();
        let claims = Claims {
            sub: user.to_string(),
            role,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            exp: now + self.ttl_secs,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| Error::Internal(format!("signing a token: {e}")))
    }

    /// The viewer of an `Authorization` header value (`Bearer <token>`); no header is
    /// anonymous, anything invalid is `UNAUTHENTICATED`.
    pub fn viewer(&self, authorization: Option<&str>) -> Result<Viewer> {
        let Some(value) = authorization else {
            return Ok(Viewer::Anonymous);
        };
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or(Error::Unauthenticated)?
            .trim();
        let header = jsonwebtoken::decode_header(token).map_err(|_| Error::Unauthenticated)?;
        let decoded = match header.alg {
            Algorithm::HS256 => {
                jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            }
            Algorithm::RS256 => {
                let key = self
                    .jwks
                    .as_ref()
                    .zip(header.kid.as_deref())
                    .and_then(|(jwks, kid)| jwks.key(kid))
                    .ok_or(Error::Unauthenticated)?;
                jsonwebtoken::decode::<Claims>(token, &key, &self.rs_validation)
            }
            _ => return Err(Error::Unauthenticated),
        };
        let data = decoded.map_err(|e| {
            tracing::debug!(error = %e, "token rejected");
            Error::Unauthenticated
        })?;
        let id = Uuid::parse_str(&data.claims.sub).map_err(|_| Error::Unauthenticated)?;
        Ok(Viewer::User {
            id,
            role: data.claims.role,
        })
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    fn authority() -> TokenAuthority {
        TokenAuthority::hs256(
            b"0123456789abcdef0123456789abcdef",
            "anineplus",
            "anineplus-api",
            60,
        )
    }

    fn bearer(token: &str) -> String {
        format!("Bearer {token}")
    }

    #[test]
    fn a_token_round_trips() {
        let user = Uuid::new_v4();
        let token = authority().issue(user, Role::Moderator).unwrap();
        let viewer = authority().viewer(Some(&bearer(&token))).unwrap();
        assert_eq!(
            viewer,
            Viewer::User {
                id: user,
                role: Role::Moderator
            }
        );
    }

    #[test]
    fn alg_none_is_rejected() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let claims = URL_SAFE_NO_PAD.encode(
            format!(
                r#"{{"sub":"{}","role":"ADMIN","iss":"anineplus","aud":"anineplus-api","iat":0,"exp":99999999999}}"#,
                Uuid::new_v4()
            )
            .as_bytes(),
        );
        let token = format!("{header}.{claims}.");
        assert!(matches!(
            authority().viewer(Some(&bearer(&token))),
            Err(Error::Unauthenticated)
        ));
    }

    fn rs256(kid: &str) -> String {
        let key = EncodingKey::from_rsa_pem(include_bytes!("testdata/rsa-test.pem")).unwrap();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        let claims = Claims {
            sub: Uuid::new_v4().to_string(),
            role: Role::User,
            iss: "anineplus".into(),
            aud: "anineplus-api".into(),
            iat: 0,
            exp: 99_999_999_999,
        };
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    }

    #[test]
    fn rs256_needs_the_jwks_key_of_its_kid() {
        let token = rs256("test-key");
        assert!(
            authority().viewer(Some(&bearer(&token))).is_err(),
            "no JWKS configured"
        );
        let jwks = crate::auth::jwks::Jwks::new("http://unused");
        assert_eq!(
            jwks.load(include_str!("testdata/rsa-test.jwks.json"))
                .unwrap(),
            1
        );
        let with = authority().with_jwks(jwks);
        assert!(matches!(
            with.viewer(Some(&bearer(&token))),
            Ok(Viewer::User {
                role: Role::User,
                ..
            })
        ));
        assert!(with.viewer(Some(&bearer(&rs256("other-key")))).is_err());
        // Our own HS256 tokens keep working next to it.
        let own = with.issue(Uuid::new_v4(), Role::Admin).unwrap();
        assert!(with.viewer(Some(&bearer(&own))).is_ok());
    }

    #[test]
    fn wrong_key_wrong_audience_and_expiry_are_rejected() {
        let other = TokenAuthority::hs256(
            b"another-secret-another-secret-xx",
            "anineplus",
            "anineplus-api",
            60,
        );
        let token = other.issue(Uuid::new_v4(), Role::Admin).unwrap();
        assert!(authority().viewer(Some(&bearer(&token))).is_err());
        let aud = TokenAuthority::hs256(
            b"0123456789abcdef0123456789abcdef",
            "anineplus",
            "other",
            60,
        );
        let token = aud.issue(Uuid::new_v4(), Role::Admin).unwrap();
        assert!(authority().viewer(Some(&bearer(&token))).is_err());
        assert!(authority().viewer(Some("Basic abc")).is_err());
        assert_eq!(authority().viewer(None).unwrap(), Viewer::Anonymous);
    }
}
