//! Organizations and their members. The creator is the OWNER, the only one (`addMember`
//! refuses the role); owners and admins manage members and change the name and slug
//! (`organization.updated`). Membership changes are events of the organization aggregate,
//! so the organization row's version is incremented (and the row locked) by each of them.
//! An organization whose owner deleted their account stays, without members' rights for
//! anyone but admins.

use anineplus_schemas::events::{self as ev, OrganizationData};
use uuid::Uuid;

use super::{Caller, Domain, Member, MemberRole, Organization, Role, validate};
use crate::outbox;
use crate::{Error, Result};

pub(super) const ORG_COLUMNS: &str = "id, name, slug, owner_id, version";

impl Domain {
    /// Creates an organization owned by the caller.
    pub async fn create_organization(
        &self,
        caller: &Caller,
        name: &str,
        slug: &str,
    ) -> Result<Organization> {
        let name = validate::text("name", name, 100)?;
        let slug = validate::slug(slug)?;
        let mut tx = self.pool.begin().await?;
        let (me, _) = self.acting(&mut tx, caller).await?;
        let org: Organization = sqlx::query_as(&format!(
            "INSERT INTO organizations (id, name, slug, owner_id) VALUES ($1, $2, $3, $4) RETURNING {ORG_COLUMNS}"
        ))
        .bind(Uuid::now_v7())
        .bind(&name)
        .bind(&slug)
        .bind(me)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| Error::conflict_on_unique(e, "slug: already taken"))?;
        sqlx::query("INSERT INTO organization_members (organization_id, user_id, member_role) VALUES ($1, $2, 'OWNER')")
            .bind(org.id)
            .bind(me)
            .execute(&mut *tx)
            .await?;
        outbox::append(
            &mut tx,
            org.id,
            org.version,
            &caller.correlation_id,
            OrganizationData::OrganizationCreated(ev::OrganizationCreated {
                organization_id: org.id.to_string(),
                name: org.name.clone(),
                slug: org.slug.clone(),
                owner_id: me.to_string(),
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(org)
    }

    /// Locks the organization for a membership change by its owner or an admin, bumping
    /// its version; returns the new version.
    async fn lock_for_members(
        &self,
        tx: &mut sqlx::PgConnection,
        caller: &Caller,
        org: Uuid,
    ) -> Result<i64> {
        self.lock_as_owner(
            tx,
            caller,
            org,
            "only the organization's owner manages its members",
        )
        .await
    }

    /// Locks the organization for a change by its owner or an admin (else `forbidden`),
    /// bumping its version; returns the new version.
    async fn lock_as_owner(
        &self,
        tx: &mut sqlx::PgConnection,
        caller: &Caller,
        org: Uuid,
        forbidden: &'static str,
    ) -> Result<i64> {
        let (me, role) = self.acting(&mut *tx, caller).await?;
        let owner: Uuid =
            sqlx::query_scalar("SELECT owner_id FROM organizations WHERE id = $1 FOR UPDATE")
                .bind(org)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(Error::NotFound("organization"))?;
        if owner != me && role != Role::Admin {
            return Err(Error::Forbidden(forbidden));
        }
        Ok(sqlx::query_scalar(
            "UPDATE organizations SET version = version + 1, updated_at = now() WHERE id = $1 RETURNING version",
        )
        .bind(org)
        .fetch_one(&mut *tx)
        .await?)
    }

    /// Adds a member (owner or admin) with role MEMBER; role OWNER is refused.
    pub async fn add_member(
        &self,
        caller: &Caller,
        org: Uuid,
        user: Uuid,
        member_role: MemberRole,
    ) -> Result<Organization> {
        let mut tx = self.pool.begin().await?;
        let version = self.lock_for_members(&mut tx, caller, org).await?;
        // One owner, the creator (`owner_id`): an OWNER added here could never be removed
        // (owners cannot be) nor manage members (that is `owner_id`'s right).
        if member_role == MemberRole::Owner {
            return Err(Error::BadInput(
                "role: an organization has one OWNER, its creator; add members as MEMBER".into(),
            ));
        }
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND deleted_at IS NULL)",
        )
        .bind(user)
        .fetch_one(&mut *tx)
        .await?;
        if !exists {
            return Err(Error::NotFound("user"));
        }
        sqlx::query("INSERT INTO organization_members (organization_id, user_id, member_role) VALUES ($1, $2, $3)")
            .bind(org)
            .bind(user)
            .bind(member_role.as_str())
            .execute(&mut *tx)
            .await
            .map_err(|e| Error::conflict_on_unique(e, "userId: already a member"))?;
        outbox::append(
            &mut tx,
            org,
            version,
            &caller.correlation_id,
            OrganizationData::OrganizationMemberAdded(ev::OrganizationMember {
                organization_id: org.to_string(),
                user_id: user.to_string(),
                member_role: member_role.as_str().to_owned(),
            }),
        )
        .await?;
        let organization = self.organization_in(&mut tx, org).await?;
        tx.commit().await?;
        Ok(organization)
    }

    /// Removes a member (owner or admin); the owner cannot be removed.
    pub async fn remove_member(
        &self,
        caller: &Caller,
        org: Uuid,
        user: Uuid,
    ) -> Result<Organization> {
        let mut tx = self.pool.begin().await?;
        let version = self.lock_for_members(&mut tx, caller, org).await?;
        let role: Option<String> = sqlx::query_scalar(
            "DELETE FROM organization_members WHERE organization_id = $1 AND user_id = $2 RETURNING member_role",
        )
        .bind(org)
        .bind(user)
        .fetch_optional(&mut *tx)
        .await?;
        match role.as_deref() {
            None => return Err(Error::NotFound("member")),
            Some("OWNER") => {
                return Err(Error::Conflict(
                    "userId: the owner cannot be removed".into(),
                ));
            }
            Some(_) => {}
        }
        outbox::append(
            &mut tx,
            org,
            version,
            &caller.correlation_id,
            OrganizationData::OrganizationMemberRemoved(ev::OrganizationMemberRemoved {
                organization_id: org.to_string(),
                user_id: user.to_string(),
            }),
        )
        .await?;
        let organization = self.organization_in(&mut tx, org).await?;
        tx.commit().await?;
        Ok(organization)
    }

    /// Renames an organization or changes its slug (its owner or an admin); `None` keeps
    /// a field. One `organization.updated` with the whole state after the change.
    pub async fn update_organization(
        &self,
        caller: &Caller,
        org: Uuid,
        name: Option<&str>,
        slug: Option<&str>,
    ) -> Result<Organization> {
        let name = name.map(|n| validate::text("name", n, 100)).transpose()?;
        let slug = slug.map(validate::slug).transpose()?;
        let mut tx = self.pool.begin().await?;
        self.lock_as_owner(
            &mut tx,
            caller,
            org,
            "only the organization's owner changes it",
        )
        .await?;
        let organization: Organization = sqlx::query_as(&format!(
            "UPDATE organizations SET name = COALESCE($2, name), slug = COALESCE($3, slug) \
             WHERE id = $1 RETURNING {ORG_COLUMNS}"
        ))
        .bind(org)
        .bind(&name)
        .bind(&slug)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| Error::conflict_on_unique(e, "slug: already taken"))?;
        outbox::append(
            &mut tx,
            org,
            organization.version,
            &caller.correlation_id,
            OrganizationData::OrganizationUpdated(ev::OrganizationState {
                organization_id: org.to_string(),
                name: organization.name.clone(),
                slug: organization.slug.clone(),
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(organization)
    }

    async fn organization_in(
        &self,
        tx: &mut sqlx::PgConnection,
        org: Uuid,
    ) -> Result<Organization> {
        Ok(sqlx::query_as(&format!(
            "SELECT {ORG_COLUMNS} FROM organizations WHERE id = $1"
        ))
        .bind(org)
        .fetch_one(&mut *tx)
        .await?)
    }

    /// An organization by id.
    pub async fn organization(&self, org: Uuid) -> Result<Option<Organization>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {ORG_COLUMNS} FROM organizations WHERE id = $1"
        ))
        .bind(org)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The members of an organization.
    pub async fn members(&self, org: Uuid) -> Result<Vec<Member>> {
        Ok(sqlx::query_as(
            "SELECT user_id, member_role FROM organization_members WHERE organization_id = $1 ORDER BY created_at LIMIT 1000",
        )
        .bind(org)
        .fetch_all(&self.pool)
        .await?)
    }
}
