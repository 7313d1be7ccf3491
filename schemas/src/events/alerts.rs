use serde::{Deserialize, Serialize};

/// Whether an alert starts (or goes on) or ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum AlertState {
    /// Above the threshold.
    Firing,
    /// Back at or under it.
    Resolved,
}

/// One error-rate alert event of the log pipeline (the `alerts` topic, keyed by
/// fingerprint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// Id of this event: `<fingerprint>:<firing since>:<state>:<n>`.
    pub alert_id: String,
    /// What fires: `<service>/<kind>`.
    pub fingerprint: String,
    /// The service.
    pub service: String,
    /// The kind of error (the records' target, or their masked message).
    pub kind: String,
    /// Firing or resolved.
    pub state: AlertState,
    /// Errors in the window when the event was made.
    pub errors: i64,
    /// Errors in the window above which it fires.
    pub threshold: i64,
    /// Length of the sliding window.
    pub window_seconds: i32,
    /// When it started firing, ms since the epoch.
    pub firing_since: i64,
    /// When this event was made, ms since the epoch.
    pub at: i64,
    /// The latest error's message.
    pub sample: String,
    /// The latest error's correlation id.
    pub correlation_id: Option<String>,
}
