//! Poll shapes: the create request, the views and the event polls publish.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Who sees tallies (the poll's creator and moderators always do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResultsVisibility {
    Always,
    #[default]
    AfterVote,
    AfterClose,
}

impl ResultsVisibility {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Always => "always",
            Self::AfterVote => "after_vote",
            Self::AfterClose => "after_close",
        }
    }

    pub(super) fn parse(raw: &str) -> Self {
        match raw {
            "always" => Self::Always,
            "after_close" => Self::AfterClose,
            _ => Self::AfterVote,
        }
    }
}

/// An option label of a poll or a survey question in the OpenAPI document: 1-100 characters
/// (trimmed), no NUL.
#[derive(Debug)]
pub struct OptionLabel;

impl utoipa::PartialSchema for OptionLabel {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .min_length(Some(1))
            .max_length(Some(100))
            .pattern(Some(r"^[^\u0000]*[^\s\u0000][^\u0000]*$"))
            .into()
    }
}

impl ToSchema for OptionLabel {}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreatePoll {
    /// 1-300 characters (trimmed); also the content of the message that carries the poll.
    #[schema(max_length = 300, pattern = r"\S")]
    pub question: String,
    /// 2-20 distinct labels of 1-100 characters (trimmed).
    #[schema(value_type = Vec<OptionLabel>, min_items = 2, max_items = 20)]
    pub options: Vec<String>,
    #[serde(default)]
    pub multiple_choice: bool,
    /// Multiple choice only: most options one voter may pick (default: all).
    #[schema(minimum = 1, maximum = 20)]
    pub max_choices: Option<u32>,
    /// No stored row links a voter to a choice; votes are final (no change, no retract).
    #[serde(default)]
    pub anonymous: bool,
    /// Default `after_vote`.
    #[serde(default)]
    pub results: ResultsVisibility,
    /// In the future, within 366 days; the poll closes itself then.
    pub closes_at: Option<DateTime<Utc>>,
    /// Idempotency key (1-64 characters) of the carrying message: a repeat returns the original poll.
    #[schema(min_length = 1, max_length = 64)]
    pub client_msg_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PollOptionView {
    pub id: Uuid,
    pub label: String,
    /// Null while the results are hidden from this viewer.
    pub votes: Option<i32>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PollView {
    pub id: Uuid,
    pub room_id: Uuid,
    /// The message that carries the poll in the room timeline.
    pub message_id: Option<Uuid>,
    pub creator_id: Uuid,
    pub question: String,
    pub options: Vec<PollOptionView>,
    pub multiple_choice: bool,
    pub max_choices: Option<i32>,
    pub anonymous: bool,
    pub results: ResultsVisibility,
    pub closes_at: Option<DateTime<Utc>>,
    pub closed: bool,
    pub closed_at: Option<DateTime<Utc>>,
    /// People who have voted (always shown: it reveals no choice).
    pub voter_count: i32,
    /// Whether `votes` are filled in for this viewer.
    pub results_visible: bool,
    /// Whether the viewer has voted; null in room-wide events.
    pub voted: Option<bool>,
    /// The viewer's choices (polls that are not anonymous); null in events and anonymous polls.
    pub my_votes: Option<Vec<Uuid>>,
    pub created_at: DateTime<Utc>,
}

/// What polls publish to the room (`crate::realtime::Event`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "type")]
pub enum PollEvent<'a> {
    /// A vote, a close or an edit: the poll as everybody may see it (tallies only when public).
    #[serde(rename = "poll.updated")]
    #[schema(title = "PollUpdatedEvent")]
    Updated { room_id: Uuid, poll: &'a PollView },
}

impl crate::realtime::Event for PollEvent<'_> {}

#[derive(Debug, Serialize, ToSchema)]
pub struct Voter {
    pub user_id: Uuid,
    pub option_id: Uuid,
    pub voted_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VoterPage {
    /// Oldest vote first; one entry per (voter, option).
    pub voters: Vec<Voter>,
    pub next_cursor: Option<String>,
}
