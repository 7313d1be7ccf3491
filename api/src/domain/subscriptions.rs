//! Plan subscriptions: one active per user; cancelled by their owner or an admin.

use anineplus_schemas::events::{self as ev, SubscriptionData};
use uuid::Uuid;

use super::{Caller, Domain, Plan, PlanSubscription, Role};
use crate::outbox;
use crate::{Error, Result};

pub(super) const SUBSCRIPTION_COLUMNS: &str =
    "id, user_id, plan, status, started_at, cancelled_at, version";

/// The `subscription.cancelled` event of `sub`, just cancelled.
pub(super) fn cancelled(sub: &PlanSubscription) -> SubscriptionData {
    SubscriptionData::SubscriptionCancelled(ev::SubscriptionCancelled {
        subscription_id: sub.id.to_string(),
        user_id: sub.user_id.to_string(),
        plan: sub.plan.as_str().to_owned(),
        cancelled_at: sub.cancelled_at.map(super::millis).unwrap_or_default(),
    })
}

impl Domain {
    /// Subscribes the caller to `plan`; `CONFLICT` when an active subscription exists.
    pub async fn subscribe(&self, caller: &Caller, plan: Plan) -> Result<PlanSubscription> {
        let mut tx = self.pool.begin().await?;
        let (me, _) = self.acting(&mut tx, caller).await?;
        let sub: PlanSubscription = sqlx::query_as(&format!(
            "INSERT INTO subscriptions (id, user_id, plan, status) VALUES ($1, $2, $3, 'ACTIVE') \
             RETURNING {SUBSCRIPTION_COLUMNS}"
        ))
        .bind(Uuid::now_v7())
        .bind(me)
        .bind(plan.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            Error::conflict_on_unique(e, "plan: an active subscription exists; cancel it first")
        })?;
        outbox::append(
            &mut tx,
            sub.id,
            sub.version,
            &caller.correlation_id,
            SubscriptionData::SubscriptionCreated(ev::SubscriptionStarted {
                subscription_id: sub.id.to_string(),
                user_id: me.to_string(),
                plan: sub.plan.as_str().to_owned(),
                started_at: super::millis(sub.started_at),
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(sub)
    }

    /// Cancels an active subscription (its owner or an admin).
    pub async fn cancel_subscription(&self, caller: &Caller, id: Uuid) -> Result<PlanSubscription> {
        let (me, role) = caller.viewer.require()?;
        let mut tx = self.pool.begin().await?;
        let current: PlanSubscription = sqlx::query_as(&format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE id = $1 FOR UPDATE"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotFound("subscription"))?;
        if current.user_id != me && role != Role::Admin {
            // Another user's subscription does not exist for this caller.
            return Err(Error::NotFound("subscription"));
        }
        if current.status != super::SubscriptionStatus::Active {
            return Err(Error::Conflict("id: the subscription is not active".into()));
        }
        let sub: PlanSubscription = sqlx::query_as(&format!(
            "UPDATE subscriptions SET status = 'CANCELLED', cancelled_at = now(), version = version + 1 \
             WHERE id = $1 RETURNING {SUBSCRIPTION_COLUMNS}"
        ))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        outbox::append(
            &mut tx,
            sub.id,
            sub.version,
            &caller.correlation_id,
            cancelled(&sub),
        )
        .await?;
        tx.commit().await?;
        Ok(sub)
    }

    /// The subscriptions of a user, newest first (the user themself or an admin).
    pub async fn subscriptions_of(
        &self,
        caller: &Caller,
        user: Uuid,
    ) -> Result<Vec<PlanSubscription>> {
        if !caller.viewer.is_self_or_admin(user) {
            return Err(Error::Forbidden(
                "only the user and admins see subscriptions",
            ));
        }
        Ok(sqlx::query_as(&format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE user_id = $1 ORDER BY started_at DESC LIMIT 100"
        ))
        .bind(user)
        .fetch_all(&self.pool)
        .await?)
    }
}
