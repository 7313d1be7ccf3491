//! Users: sign-up, login, profile, deletion.
//!
//! Deleting a user (the user themself, or an admin) is a soft delete that erases what is
//! personal: the row keeps its id, role, version and times, and loses its email, name and
//! password hash (`user.deleted` carries only the id). In the same transaction their
//! memberships end (`organization.member_removed` on each organization; organizations they
//! own stay, managed by admins) and their active subscription is cancelled
//! (`subscription.cancelled`). Their comments stay, with no author. A deleted user's
//! tokens act no more: every write made as a user first checks that the user is live
//! ([`Domain::acting`]), under a row lock that the deletion's conflicts with.

use anineplus_schemas::events::{self as ev, OrganizationData, UserData};
use uuid::Uuid;

use super::{Caller, Domain, PlanSubscription, Role, User, validate};
use crate::auth::password;
use crate::outbox;
use crate::{Error, Result};

pub(super) const USER_COLUMNS: &str = "id, email, name, role, version, created_at";

fn event_role(role: Role) -> ev::UserRole {
    match role {
        Role::User => ev::UserRole::User,
        Role::Moderator => ev::UserRole::Moderator,
        Role::Admin => ev::UserRole::Admin,
        Role::Operator => ev::UserRole::Operator,
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
        Ok(sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id = $1 AND deleted_at IS NULL"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Changes the caller's own name.
    pub async fn update_profile(&self, caller: &Caller, name: &str) -> Result<User> {
        let (me, _) = caller.viewer.require()?;
        let name = validate::text("name", name, 100)?;
        let mut tx = self.pool.begin().await?;
        let user: User = sqlx::query_as(&format!(
            "UPDATE users SET name = $2, version = version + 1, updated_at = now() \
             WHERE id = $1 AND deleted_at IS NULL RETURNING {USER_COLUMNS}"
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

impl Domain {
    /// The signed-in caller, checked to be a live user inside `tx`: a deleted user's
    /// token (valid until it expires) is `UNAUTHENTICATED` for every write. The row is
    /// locked `FOR SHARE` until `tx` ends, so a concurrent deletion waits for this write
    /// (and then sees what it wrote) or this write waits and is refused.
    pub(crate) async fn acting(
        &self,
        tx: &mut sqlx::PgConnection,
        caller: &Caller,
    ) -> Result<(Uuid, Role)> {
        let (me, role) = caller.viewer.require()?;
        if !self.live_user(tx, me).await? {
            return Err(Error::Unauthenticated);
        }
        Ok((me, role))
    }

    /// Whether user `id` exists and is not deleted, locking its row `FOR SHARE`.
    pub(crate) async fn live_user(&self, tx: &mut sqlx::PgConnection, id: Uuid) -> Result<bool> {
        let live: Option<Uuid> = sqlx::query_scalar(
            "SELECT id FROM users WHERE id = $1 AND deleted_at IS NULL FOR SHARE",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        Ok(live.is_some())
    }

    /// Deletes user `id`: the user themself or an admin (see the module's header for what
    /// that erases and ends).
    pub async fn delete_user(&self, caller: &Caller, id: Uuid) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let (me, role) = self.acting(&mut tx, caller).await?;
        if me != id && role != Role::Admin {
            return Err(Error::Forbidden("only admins delete other users"));
        }
        let version: i64 = sqlx::query_scalar(
            "UPDATE users SET email = NULL, name = NULL, password_hash = NULL, deleted_at = now(), \
             version = version + 1, updated_at = now() WHERE id = $1 AND deleted_at IS NULL \
             RETURNING version",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotFound("user"))?;
        outbox::append(
            &mut tx,
            id,
            version,
            &caller.correlation_id,
            UserData::UserDeleted(ev::UserDeleted {
                user_id: id.to_string(),
            }),
        )
        .await?;
        // Memberships end, one event per organization. Each organization is locked before
        // its membership row, as membership changes do, so they cannot deadlock with this.
        let orgs: Vec<Uuid> = sqlx::query_scalar(
            "SELECT organization_id FROM organization_members WHERE user_id = $1 \
             ORDER BY organization_id",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        for org in orgs {
            sqlx::query("SELECT 1 FROM organizations WHERE id = $1 FOR UPDATE")
                .bind(org)
                .execute(&mut *tx)
                .await?;
            let removed = sqlx::query(
                "DELETE FROM organization_members WHERE organization_id = $1 AND user_id = $2",
            )
            .bind(org)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if removed == 0 {
                continue; // removed meanwhile, with its own event
            }
            let version: i64 = sqlx::query_scalar(
                "UPDATE organizations SET version = version + 1, updated_at = now() WHERE id = $1 \
                 RETURNING version",
            )
            .bind(org)
            .fetch_one(&mut *tx)
            .await?;
            outbox::append(
                &mut tx,
                org,
                version,
                &caller.correlation_id,
                OrganizationData::OrganizationMemberRemoved(ev::OrganizationMemberRemoved {
                    organization_id: org.to_string(),
                    user_id: id.to_string(),
                }),
            )
            .await?;
        }
        let cancelled: Vec<PlanSubscription> = sqlx::query_as(&format!(
            "UPDATE subscriptions SET status = 'CANCELLED', cancelled_at = now(), version = version + 1 \
             WHERE user_id = $1 AND status = 'ACTIVE' RETURNING {}",
            super::subscriptions::SUBSCRIPTION_COLUMNS
        ))
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        for sub in cancelled {
            outbox::append(
                &mut tx,
                sub.id,
                sub.version,
                &caller.correlation_id,
                super::subscriptions::cancelled(&sub),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(true)
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
