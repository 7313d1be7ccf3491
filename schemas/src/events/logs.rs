use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LogLevel {
    /// Very detailed.
    Trace,
    /// Detailed.
    Debug,
    /// Normal operation.
    Info,
    /// Something to look at.
    Warn,
    /// Something failed.
    Error,
}

/// One log line of any service (the `logs` topic, keyed by service name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogRecord {
    /// Severity.
    pub level: LogLevel,
    /// When, ms since the epoch.
    pub timestamp: i64,
    /// Service that logged it.
    pub service: String,
    /// Trace id, if any.
    pub trace_id: Option<String>,
    /// Correlation id of the request, if any.
    pub correlation_id: Option<String>,
    /// The message.
    pub message: String,
    /// Structured fields, as strings.
    pub context: BTreeMap<String, String>,
}
