//! Users: sign-up, login, profile.

use anineplus_schemas::events::{self as ev, UserData};
use uuid::Uuid;

use super::{Caller, Domain, Role, User, validate};
use crate::auth::password;
use crate::outbox;
use crate::{Error, Result};

const USER_COLUMNS: &str = "id, email, name, role, version, created_at";

fn event_role(role: Role) -> ev::UserRole {
    match role {
        Role::User => ev::UserRole::User,
        Role::Moderator => ev::UserRole::Moderator,
        Role::Admin => ev::UserRole::Admin,
    }
}

impl Domain {
    /// Creates a user (ADMIN when the email is a bootstrap admin) and returns it with a token.
    pub async fn sign_up(
        &self,
        caller: &Caller,
        email: &str,
        name: &str,
        password: &str,
    ) -> Result<(String, User)> {
        let email = validate::email(email)?;
        let name = validate::text("name", name, 100)?;
        validate::password(password)?;
        let hash = password::hash(password.to_owned()).await?;
        let role = if self.admin_emails.contains(&email) {
            Role::Admin
        } else {
            Role::User
        };
        let mut tx = self.pool.begin().await?;
        let user: User = sqlx::query_as(&format!(
            "INSERT INTO users (id, email, name, role, password_hash) VALUES ($1, $2, $3, $4, $5) \
             RETURNING {USER_COLUMNS}"
        ))
        .bind(Uuid::now_v7())
        .bind(&email)
        .bind(&name)
        .bind(role.as_str())
        .bind(hash)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| Error::conflict_on_unique(e, "email: already registered"))?;
        outbox::append(
            &mut tx,
            user.id,
            user.version,
            &caller.correlation_id,
            UserData::UserCreated(ev::UserState {
                user_id: user.id.to_string(),
                email: user.email.clone(),
                name: user.name.clone(),
                role: event_role(user.role),
                created_at: super::millis(user.created_at),
            }),
        )
        .await?;
        tx.commit().await?;
        let token = self.tokens.issue(user.id, user.role)?;
        Ok((token, user))
    }

    /// Checks credentials; the same `UNAUTHENTICATED` answer for an unknown email and a wrong
    /// password.
    pub async fn login(&self, email: &str, password: &str) -> Result<(String, User)> {
        let email = validate::email(email).map_err(|_| Error::Unauthenticated)?;
        let row: Option<(String,)> =
            sqlx::query_as("SELECT password_hash FROM users WHERE lower(email) = $1")
                .bind(&email)
                .fetch_optional(&self.pool)
                .await?;
        let Some((hash,)) = row else {
            // Spend the same time as a real check, so timing does not reveal accounts.
            let _ = password::verify(password.to_owned(), dummy_hash().await?).await;
            return Err(Error::Unauthenticated);
        };
        if !password::verify(password.to_owned(), hash).await? {
            return Err(Error::Unauthenticated);
        }
        let user: User = sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE lower(email) = $1"
        ))
        .bind(&email)
        .fetch_one(&self.pool)
        .await?;
        let token = self.tokens.issue(user.id, user.role)?;
        Ok((token, user))
    }

    /// A user by id.
    pub async fn user(&self, id: Uuid) -> Result<Option<User>> {
        Ok(
            sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Changes the caller's own name.
    pub async fn update_profile(&self, caller: &Caller, name: &str) -> Result<User> {
        let (me, _) = caller.viewer.require()?;
        let name = validate::text("name", name, 100)?;
        let mut tx = self.pool.begin().await?;
        let user: User = sqlx::query_as(&format!(
            "UPDATE users SET name = $2, version = version + 1, updated_at = now() WHERE id = $1 \
             RETURNING {USER_COLUMNS}"
        ))
        .bind(me)
        .bind(&name)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotFound("user"))?;
        outbox::append(
            &mut tx,
            user.id,
            user.version,
            &caller.correlation_id,
            UserData::UserUpdated(ev::UserUpdated {
                user_id: user.id.to_string(),
                email: user.email.clone(),
                name: user.name.clone(),
                role: event_role(user.role),
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(user)
    }
}

/// An argon2id hash of a random password, computed once, verified against when the email
/// is unknown so both answers cost the same.
static DUMMY_HASH: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();

async fn dummy_hash() -> Result<String> {
    DUMMY_HASH
        .get_or_try_init(|| password::hash(Uuid::new_v4().to_string()))
        .await
        .cloned()
}
