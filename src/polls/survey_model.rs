//! Survey shapes: requests, views, results and the event surveys publish.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::poll_model::OptionLabel;

/// Who sees the results (the survey's creator and moderators always do; everyone once closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SurveyResultsVisibility {
    Always,
    AfterResponse,
    #[default]
    AfterClose,
}

impl SurveyResultsVisibility {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Always => "always",
            Self::AfterResponse => "after_response",
            Self::AfterClose => "after_close",
        }
    }

    pub(super) fn parse(raw: &str) -> Self {
        match raw {
            "always" => Self::Always,
            "after_response" => Self::AfterResponse,
            _ => Self::AfterClose,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuestionKind {
    /// Exactly one option.
    Single,
    /// One or more options, up to `max_choices`.
    Multiple,
    /// Free text, 1-4000 characters.
    Text,
    /// 1..=scale.
    Rating,
}

impl QuestionKind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Single => "single",
            Self::Multiple => "multiple",
            Self::Text => "text",
            Self::Rating => "rating",
        }
    }

    pub(super) fn parse(raw: &str) -> Self {
        match raw {
            "single" => Self::Single,
            "multiple" => Self::Multiple,
            "text" => Self::Text,
            _ => Self::Rating,
        }
    }

    pub(super) fn is_choice(self) -> bool {
        matches!(self, Self::Single | Self::Multiple)
    }

    /// The answer field this kind is answered with.
    pub(super) fn answer_field(self) -> &'static str {
        match self {
            Self::Single | Self::Multiple => "option_ids",
            Self::Text => "text",
            Self::Rating => "rating",
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SurveyQuestionInput {
    pub kind: QuestionKind,
    /// 1-500 characters (trimmed).
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"
    )]
    pub prompt: String,
    /// Single and multiple choice only: 2-20 distinct labels of 1-100 characters.
    #[schema(value_type = Option<Vec<OptionLabel>>, min_items = 2, max_items = 20)]
    pub options: Option<Vec<String>>,
    /// Default true: a response must answer it.
    #[serde(default = "yes")]
    pub required: bool,
    /// Rating only: 5 or 10 (default 5).
    #[schema(minimum = 5, maximum = 10)]
    pub scale: Option<u32>,
    /// Multiple choice only: most options one answer may pick (default: all).
    #[schema(minimum = 1, maximum = 20)]
    pub max_choices: Option<u32>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateSurvey {
    /// 1-200 characters (trimmed); also the content of the message that carries the survey.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"
    )]
    pub title: String,
    /// At most 4000 characters.
    #[schema(max_length = 4000, pattern = r"^[^\u0000]*$")]
    pub description: Option<String>,
    /// 1-50 questions, asked in this order.
    #[schema(min_items = 1, max_items = 50)]
    pub questions: Vec<SurveyQuestionInput>,
    /// Default `after_close`.
    #[serde(default)]
    pub results: SurveyResultsVisibility,
    /// In the future, within 366 days; the survey closes itself then.
    pub closes_at: Option<DateTime<Utc>>,
    /// Idempotency key (1-64 characters) of the carrying message: a repeat returns the original survey.
    #[schema(min_length = 1, max_length = 64)]
    pub client_msg_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SurveyOptionView {
    pub id: Uuid,
    pub label: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SurveyQuestionView {
    pub id: Uuid,
    pub kind: QuestionKind,
    pub prompt: String,
    pub required: bool,
    /// Rating questions: the top of the scale.
    pub scale: Option<i16>,
    pub max_choices: Option<i32>,
    /// Empty for text and rating questions.
    pub options: Vec<SurveyOptionView>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SurveyView {
    pub id: Uuid,
    pub room_id: Uuid,
    /// The message that carries the survey in the room timeline.
    pub message_id: Option<Uuid>,
    pub creator_id: Uuid,
    pub title: String,
    pub description: String,
    pub questions: Vec<SurveyQuestionView>,
    pub results: SurveyResultsVisibility,
    pub closes_at: Option<DateTime<Utc>>,
    pub closed: bool,
    pub closed_at: Option<DateTime<Utc>>,
    pub response_count: i32,
    /// Whether the viewer has responded; null in room-wide events.
    pub responded: Option<bool>,
    /// Whether `GET .../results` would show this viewer the results.
    pub results_visible: bool,
    pub created_at: DateTime<Utc>,
}

/// What surveys publish to the room (`crate::realtime::Event`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "type")]
pub enum SurveyEvent<'a> {
    /// A response or a close: the survey as everybody may see it.
    #[serde(rename = "survey.updated")]
    #[schema(title = "SurveyUpdatedEvent")]
    Updated {
        room_id: Uuid,
        survey: &'a SurveyView,
    },
}

impl crate::realtime::Event for SurveyEvent<'_> {}

/// One answer: the field that matches the question's kind, and only that one.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SurveyAnswerInput {
    pub question_id: Uuid,
    /// Single (exactly one) and multiple choice.
    pub option_ids: Option<Vec<Uuid>>,
    /// Text questions: 1-4000 characters (trimmed).
    #[schema(
        min_length = 1,
        max_length = 4000,
        pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"
    )]
    pub text: Option<String>,
    /// Rating questions: 1..=scale.
    #[schema(minimum = 1, maximum = 10)]
    pub rating: Option<i32>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SurveyAnswer {
    pub question_id: Uuid,
    /// In option order.
    pub option_ids: Option<Vec<Uuid>>,
    pub text: Option<String>,
    pub rating: Option<i16>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SurveyResponseView {
    pub survey_id: Uuid,
    /// In question order.
    pub answers: Vec<SurveyAnswer>,
    pub submitted_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SurveyOptionCount {
    pub option_id: Uuid,
    pub label: String,
    pub count: i32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SurveyRatingSummary {
    /// Null while nobody has answered.
    pub mean: Option<f64>,
    /// How many answered 1, 2, .., scale.
    pub distribution: Vec<i32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SurveyTextAnswer {
    pub user_id: Uuid,
    pub text: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SurveyQuestionResults {
    pub question_id: Uuid,
    pub kind: QuestionKind,
    pub prompt: String,
    /// Responses that answered this question.
    pub answered: i32,
    /// Choice questions.
    pub options: Option<Vec<SurveyOptionCount>>,
    /// Rating questions.
    pub rating: Option<SurveyRatingSummary>,
    /// Text questions, for the creator and manage_messages holders only; null for others.
    pub text_answers: Option<Vec<SurveyTextAnswer>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SurveyResults {
    pub survey_id: Uuid,
    pub response_count: i32,
    pub questions: Vec<SurveyQuestionResults>,
}
