//! Realistic sample events, shared by tests and benchmarks across the workspace.

use super::*;

/// An envelope around `data` with fixed, realistic metadata.
pub fn envelope<T>(
    event_type: &str,
    aggregate_id: &str,
    aggregate_version: i64,
    data: T,
) -> Envelope<T> {
    Envelope {
        event_id: "0192f3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b".into(),
        event_type: event_type.into(),
        timestamp: 1_764_000_000_000,
        source: "anineplus-api".into(),
        version: 1,
        correlation_id: Some("c0ffee00-1234-4abc-8def-0123456789ab".into()),
        causation_id: None,
        aggregate_id: aggregate_id.into(),
        aggregate_version,
        data,
    }
}

/// `anime.updated` with a synopsis and three genres: the benchmark's record.
pub fn anime_updated(n: u64) -> Envelope<AnimeData> {
    let id = format!("anime-{n:08}");
    envelope(
        "anime.updated",
        &id,
        3,
        AnimeData::AnimeUpdated(AnimeState {
            anime_id: id.clone(),
            title: format!("Frieren: Beyond Journey's End ({n})"),
            synopsis: Some(
                "After the party of heroes defeats the Demon King, the elf mage Frieren outlives \
                 her companions and sets out to understand people."
                    .into(),
            ),
            genres: vec!["adventure".into(), "drama".into(), "fantasy".into()],
            status: AnimeStatus::Finished,
            release_year: Some(2023),
            alternative_titles: vec!["葬送のフリーレン".into(), "Frieren".into(), "芙莉莲".into()],
        }),
    )
}

/// One sample event of every payload branch, per topic.
#[derive(Debug, Clone)]
pub struct AllTopics {
    /// `user`
    pub users: Vec<Envelope<UserData>>,
    /// `organization`
    pub organizations: Vec<Envelope<OrganizationData>>,
    /// `anime`
    pub anime: Vec<Envelope<AnimeData>>,
    /// `episode`
    pub episodes: Vec<Envelope<EpisodeData>>,
    /// `comment`
    pub comments: Vec<Envelope<CommentData>>,
    /// `subscription`
    pub subscriptions: Vec<Envelope<SubscriptionData>>,
    /// `logs`
    pub logs: Vec<LogRecord>,
    /// One alert firing and its resolution.
    pub alerts: Vec<Alert>,
    /// One statistic of each kind.
    pub stats: Vec<super::AnimeStat>,
}

/// One event of every topic and every payload branch.
pub fn one_of_each() -> AllTopics {
    let user = UserState {
        user_id: "u1".into(),
        email: "ann@example.com".into(),
        name: "Ann".into(),
        role: UserRole::Moderator,
        created_at: 1_764_000_000_000,
    };
    let users = vec![
        envelope("user.created", "u1", 1, UserData::UserCreated(user.clone())),
        envelope(
            "user.updated",
            "u1",
            2,
            UserData::UserUpdated(UserUpdated {
                user_id: "u1".into(),
                email: user.email.clone(),
                name: "Anne".into(),
                role: UserRole::Admin,
            }),
        ),
        envelope(
            "user.deleted",
            "u1",
            3,
            UserData::UserDeleted(UserDeleted {
                user_id: "u1".into(),
            }),
        ),
    ];
    let orgs = vec![
        envelope(
            "organization.created",
            "o1",
            1,
            OrganizationData::OrganizationCreated(OrganizationCreated {
                organization_id: "o1".into(),
                name: "Studio".into(),
                slug: "studio".into(),
                owner_id: "u1".into(),
            }),
        ),
        envelope(
            "organization.updated",
            "o1",
            2,
            OrganizationData::OrganizationUpdated(OrganizationState {
                organization_id: "o1".into(),
                name: "Studio 2".into(),
                slug: "studio-2".into(),
            }),
        ),
        envelope(
            "organization.member_added",
            "o1",
            3,
            OrganizationData::OrganizationMemberAdded(OrganizationMember {
                organization_id: "o1".into(),
                user_id: "u2".into(),
                member_role: "MEMBER".into(),
            }),
        ),
        envelope(
            "organization.member_removed",
            "o1",
            4,
            OrganizationData::OrganizationMemberRemoved(OrganizationMemberRemoved {
                organization_id: "o1".into(),
                user_id: "u2".into(),
            }),
        ),
    ];
    let mut created = anime_updated(1);
    created.event_type = "anime.created".into();
    if let AnimeData::AnimeUpdated(state) = created.data.clone() {
        created.data = AnimeData::AnimeCreated(AnimeState {
            synopsis: None,
            release_year: None,
            genres: vec![],
            alternative_titles: vec![],
            ..state
        });
    }
    let anime = vec![
        created,
        anime_updated(1),
        envelope(
            "anime.deleted",
            "anime-00000001",
            4,
            AnimeData::AnimeDeleted(AnimeDeleted {
                anime_id: "anime-00000001".into(),
            }),
        ),
    ];
    let episode = EpisodeState {
        episode_id: "e1".into(),
        anime_id: "anime-00000001".into(),
        number: 1,
        title: Some("The Journey's End".into()),
        duration_seconds: Some(1440),
        air_date: Some(19_650),
    };
    let episodes = vec![
        envelope(
            "episode.created",
            "e1",
            1,
            EpisodeData::EpisodeCreated(episode.clone()),
        ),
        envelope(
            "episode.updated",
            "e1",
            2,
            EpisodeData::EpisodeUpdated(EpisodeState {
                title: None,
                duration_seconds: None,
                air_date: None,
                ..episode
            }),
        ),
        envelope(
            "episode.deleted",
            "e1",
            3,
            EpisodeData::EpisodeDeleted(EpisodeDeleted {
                episode_id: "e1".into(),
                anime_id: "anime-00000001".into(),
            }),
        ),
    ];
    let comments = vec![
        envelope(
            "comment.created",
            "c1",
            1,
            CommentData::CommentCreated(CommentPosted {
                comment_id: "c1".into(),
                anime_id: "anime-00000001".into(),
                episode_id: Some("e1".into()),
                author_id: "u1".into(),
                body: "'); DROP TABLE comments; -- ✓ 日本語".into(),
                status: CommentStatus::Visible,
                created_at: 1_764_000_000_000,
            }),
        ),
        envelope(
            "comment.moderated",
            "c1",
            2,
            CommentData::CommentModerated(CommentModerated {
                comment_id: "c1".into(),
                anime_id: "anime-00000001".into(),
                episode_id: None,
                status: CommentStatus::Hidden,
                reason: Some("spoiler".into()),
                moderated_by: "u9".into(),
                moderated_at: 1_764_000_000_001,
            }),
        ),
        envelope(
            "comment.deleted",
            "c1",
            3,
            CommentData::CommentDeleted(CommentDeleted {
                comment_id: "c1".into(),
                anime_id: "anime-00000001".into(),
                episode_id: None,
            }),
        ),
    ];
    let subscriptions = vec![
        envelope(
            "subscription.created",
            "s1",
            1,
            SubscriptionData::SubscriptionCreated(SubscriptionStarted {
                subscription_id: "s1".into(),
                user_id: "u1".into(),
                plan: "premium".into(),
                started_at: 1,
            }),
        ),
        envelope(
            "subscription.cancelled",
            "s1",
            2,
            SubscriptionData::SubscriptionCancelled(SubscriptionCancelled {
                subscription_id: "s1".into(),
                user_id: "u1".into(),
                plan: "premium".into(),
                cancelled_at: 2,
            }),
        ),
    ];
    let logs = vec![LogRecord {
        level: LogLevel::Warn,
        timestamp: 1_764_000_000_000,
        service: "anineplus-api".into(),
        trace_id: None,
        correlation_id: Some("c0ffee".into()),
        message: "rate limited".into(),
        context: [
            ("userId".to_owned(), "u1".to_owned()),
            ("retryAfter".to_owned(), "3".to_owned()),
        ]
        .into(),
    }];
    let firing = Alert {
        alert_id: "api/anineplus_api::graphql:1764000000000:FIRING:1".into(),
        fingerprint: "api/anineplus_api::graphql".into(),
        service: "api".into(),
        kind: "anineplus_api::graphql".into(),
        state: AlertState::Firing,
        errors: 12,
        threshold: 10,
        window_seconds: 60,
        firing_since: 1_764_000_000_000,
        at: 1_764_000_000_000,
        sample: "resolver failed".into(),
        correlation_id: Some("c0ffee".into()),
    };
    let resolved = Alert {
        alert_id: "api/anineplus_api::graphql:1764000000000:RESOLVED:1".into(),
        state: AlertState::Resolved,
        errors: 0,
        at: 1_764_000_090_000,
        ..firing.clone()
    };
    let stats = vec![
        super::AnimeStat {
            stat_id: "comments:anime-00000001:1764000000000".into(),
            kind: super::StatKind::CommentsPerHour,
            anime_id: Some("anime-00000001".into()),
            plan: None,
            window_start: Some(1_764_000_000_000),
            window_end: Some(1_764_003_600_000),
            count: 3,
            at: 1_764_000_090_000,
        },
        super::AnimeStat {
            stat_id: "plan:premium".into(),
            kind: super::StatKind::SubscriptionsPerPlan,
            anime_id: None,
            plan: Some("premium".into()),
            window_start: None,
            window_end: None,
            count: 42,
            at: 1_764_000_090_000,
        },
    ];
    AllTopics {
        stats,
        alerts: vec![firing, resolved],
        users,
        organizations: orgs,
        anime,
        episodes,
        comments,
        subscriptions,
        logs,
    }
}
