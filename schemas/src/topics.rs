//! The topics of the platform and the schema of each.
//!
//! One topic per aggregate, keyed by the entity id, so Kafka orders every entity's events
//! (see `docs/events.md`). The seed's event names (`anime.updated`, ...) are the event
//! types, carried in the envelope's `eventType` and in the `event-type` header.

/// A topic of the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Users: `user.created|updated|deleted`.
    User,
    /// Organizations and members.
    Organization,
    /// Anime: `anime.created|updated|deleted`.
    Anime,
    /// Episodes: `episode.created|updated|deleted`.
    Episode,
    /// Comments: `comment.created|moderated|deleted`.
    Comment,
    /// Subscriptions: `subscription.created|cancelled`.
    Subscription,
    /// Log lines of every service (not an aggregate: keyed by service name).
    Logs,
    /// Error-rate alerts of the log pipeline (not an aggregate: keyed by fingerprint).
    Alerts,
    /// Results of the analytics pipeline (not an aggregate: keyed by statistic).
    AnimeStats,
}

impl Topic {
    /// Every topic, in a stable order.
    pub const ALL: [Topic; 9] = [
        Topic::User,
        Topic::Organization,
        Topic::Anime,
        Topic::Episode,
        Topic::Comment,
        Topic::Subscription,
        Topic::Logs,
        Topic::Alerts,
        Topic::AnimeStats,
    ];

    /// The Kafka topic name.
    pub const fn name(self) -> &'static str {
        match self {
            Topic::User => "user",
            Topic::Organization => "organization",
            Topic::Anime => "anime",
            Topic::Episode => "episode",
            Topic::Comment => "comment",
            Topic::Subscription => "subscription",
            Topic::Logs => "logs",
            Topic::Alerts => "alerts",
            Topic::AnimeStats => "anime-stats",
        }
    }

    /// The registry subject of the value schema (TopicNameStrategy).
    pub fn subject(self) -> String {
        format!("{}-value", self.name())
    }

    /// The current value schema (`schemas/avro/<topic>.avsc`).
    pub const fn schema(self) -> &'static str {
        match self {
            Topic::User => include_str!("../avro/user.avsc"),
            Topic::Organization => include_str!("../avro/organization.avsc"),
            Topic::Anime => include_str!("../avro/anime.avsc"),
            Topic::Episode => include_str!("../avro/episode.avsc"),
            Topic::Comment => include_str!("../avro/comment.avsc"),
            Topic::Subscription => include_str!("../avro/subscription.avsc"),
            Topic::Logs => include_str!("../avro/logs.avsc"),
            Topic::Alerts => include_str!("../avro/alerts.avsc"),
            Topic::AnimeStats => include_str!("../avro/anime-stats.avsc"),
        }
    }

    /// The event types the topic carries, in the order of the `data` union's branches.
    pub const fn event_types(self) -> &'static [&'static str] {
        match self {
            Topic::User => &["user.created", "user.updated", "user.deleted"],
            Topic::Organization => &[
                "organization.created",
                "organization.updated",
                "organization.member_added",
                "organization.member_removed",
            ],
            Topic::Anime => &["anime.created", "anime.updated", "anime.deleted"],
            Topic::Episode => &["episode.created", "episode.updated", "episode.deleted"],
            Topic::Comment => &["comment.created", "comment.moderated", "comment.deleted"],
            Topic::Subscription => &["subscription.created", "subscription.cancelled"],
            Topic::Logs | Topic::Alerts | Topic::AnimeStats => &[],
        }
    }

    /// Whether the topic carries an aggregate's events (an envelope with event types,
    /// keyed by entity id), as opposed to `logs` and `alerts`.
    pub const fn is_aggregate(self) -> bool {
        !matches!(self, Topic::Logs | Topic::Alerts | Topic::AnimeStats)
    }

    /// The topic with this name.
    pub fn from_name(name: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl std::fmt::Display for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_parses_and_names_its_event_types_in_union_order() {
        for topic in Topic::ALL {
            let schema = apache_avro::Schema::parse_str(topic.schema())
                .unwrap_or_else(|e| panic!("{topic}.avsc: {e}"));
            let json: serde_json::Value = serde_json::from_str(topic.schema()).unwrap();
            if !topic.is_aggregate() {
                continue;
            }
            let data = json["fields"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["name"] == "data")
                .unwrap();
            let branches: Vec<_> = data["type"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| {
                    b["doc"]
                        .as_str()
                        .unwrap()
                        .split(':')
                        .next()
                        .unwrap()
                        .trim_end_matches('.')
                })
                .collect();
            assert_eq!(branches, topic.event_types(), "{topic}: {schema:?}");
        }
    }

    #[test]
    fn names_round_trip() {
        for topic in Topic::ALL {
            assert_eq!(Topic::from_name(topic.name()), Some(topic));
        }
        assert_eq!(Topic::Anime.subject(), "anime-value");
    }
}
