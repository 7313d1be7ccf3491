use serde::{Deserialize, Serialize};

/// `subscription.created`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionStarted {
    /// Subscription id.
    pub subscription_id: String,
    /// Subscriber.
    pub user_id: String,
    /// Plan name.
    pub plan: String,
    /// Start time, ms since the epoch.
    pub started_at: i64,
}

/// `subscription.cancelled`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionCancelled {
    /// Subscription id.
    pub subscription_id: String,
    /// Subscriber.
    pub user_id: String,
    /// Plan name.
    pub plan: String,
    /// Cancellation time, ms since the epoch.
    pub cancelled_at: i64,
}

/// The `data` union of the `subscription` topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SubscriptionData {
    /// `subscription.created`
    SubscriptionCreated(SubscriptionStarted),
    /// `subscription.cancelled`
    SubscriptionCancelled(SubscriptionCancelled),
}

impl super::EventData for SubscriptionData {
    fn event_type(&self) -> &'static str {
        match self {
            SubscriptionData::SubscriptionCreated(_) => "subscription.created",
            SubscriptionData::SubscriptionCancelled(_) => "subscription.cancelled",
        }
    }
}
