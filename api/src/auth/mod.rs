//! Who is calling: JWTs ([`jwt`], with RS256 keys from a JWKS URL in [`jwks`]), password
//! hashes ([`password`]) and the [`Viewer`].

pub mod jwks;
pub mod jwt;
pub mod password;

use uuid::Uuid;

use crate::domain::Role;
use crate::{Error, Result};

/// The authenticated caller of a request, or nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    /// No token was sent.
    Anonymous,
    /// A valid token for this user with this role.
    User {
        /// The user's id (`sub`).
        id: Uuid,
        /// The role claimed by the token.
        role: Role,
    },
}

impl Viewer {
    /// The user id, or `UNAUTHENTICATED`.
    pub fn require(&self) -> Result<(Uuid, Role)> {
        match *self {
            Viewer::User { id, role } => Ok((id, role)),
            Viewer::Anonymous => Err(Error::Unauthenticated),
        }
    }

    /// The user id when the role is at least `min`; `UNAUTHENTICATED` or `FORBIDDEN` otherwise.
    pub fn require_role(&self, min: Role, what: &'static str) -> Result<Uuid> {
        let (id, role) = self.require()?;
        if role.at_least(min) {
            Ok(id)
        } else {
            Err(Error::Forbidden(what))
        }
    }

    /// Whether the viewer is `user` or an admin.
    pub fn is_self_or_admin(&self, user: Uuid) -> bool {
        matches!(*self, Viewer::User { id, role } if id == user || role == Role::Admin)
    }

    /// Whether the viewer moderates (MODERATOR or ADMIN).
    pub fn is_moderator(&self) -> bool {
        matches!(*self, Viewer::User { role, .. } if role.at_least(Role::Moderator))
    }

    /// The user id, if any.
    pub fn id(&self) -> Option<Uuid> {
        match *self {
            Viewer::User { id, .. } => Some(id),
            Viewer::Anonymous => None,
        }
    }
}
