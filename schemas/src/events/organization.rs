use serde::{Deserialize, Serialize};

/// `organization.created`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationCreated {
    /// Organization id.
    pub organization_id: String,
    /// Name.
    pub name: String,
    /// Unique URL slug.
    pub slug: String,
    /// Creator and first member.
    pub owner_id: String,
}

/// Full state after a change (`organization.updated`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationState {
    /// Organization id.
    pub organization_id: String,
    /// Name.
    pub name: String,
    /// Unique URL slug.
    pub slug: String,
}

/// `organization.member_added`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationMember {
    /// Organization id.
    pub organization_id: String,
    /// The member.
    pub user_id: String,
    /// Role inside the organization (`OWNER`, `MEMBER`).
    pub member_role: String,
}

/// `organization.member_removed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationMemberRemoved {
    /// Organization id.
    pub organization_id: String,
    /// The former member.
    pub user_id: String,
}

/// The `data` union of the `organization` topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OrganizationData {
    /// `organization.created`
    OrganizationCreated(OrganizationCreated),
    /// `organization.updated`
    OrganizationUpdated(OrganizationState),
    /// `organization.member_added`
    OrganizationMemberAdded(OrganizationMember),
    /// `organization.member_removed`
    OrganizationMemberRemoved(OrganizationMemberRemoved),
}

impl super::EventData for OrganizationData {
    fn event_type(&self) -> &'static str {
        match self {
            OrganizationData::OrganizationCreated(_) => "organization.created",
            OrganizationData::OrganizationUpdated(_) => "organization.updated",
            OrganizationData::OrganizationMemberAdded(_) => "organization.member_added",
            OrganizationData::OrganizationMemberRemoved(_) => "organization.member_removed",
        }
    }
}
