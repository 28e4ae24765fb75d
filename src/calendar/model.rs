//! Event shapes: requests, series and occurrence views, RSVPs, and the events published.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateEvent {
    /// 1-200 characters (trimmed).
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"
    )]
    pub title: String,
    /// Up to 4,000 characters.
    #[serde(default)]
    #[schema(max_length = 4000, pattern = r"^[^\u0000]*$")]
    pub description: String,
    /// Up to 500 characters.
    #[serde(default)]
    #[schema(max_length = 500, pattern = r"^[^\u0000]*$")]
    pub location: String,
    /// First occurrence; with `timezone` its local wall-clock time is what recurs.
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// IANA zone, e.g. `Europe/Berlin`.
    pub timezone: String,
    /// RFC 5545 RRULE value, e.g. `FREQ=WEEKLY;BYDAY=MO,WE;COUNT=10`.
    pub rrule: Option<String>,
    /// At most 500.
    #[serde(default)]
    #[schema(max_items = 500)]
    pub exdates: Vec<DateTime<Utc>>,
    /// At most 500.
    #[serde(default)]
    #[schema(max_items = 500)]
    pub rdates: Vec<DateTime<Utc>>,
    /// Attach to a group (its members see it) ...
    pub group_id: Option<Uuid>,
    /// ... or to a room.
    pub room_id: Option<Uuid>,
}

/// A change to a whole series (or, in a split, to the new series). Absent fields stay; an empty
/// `rrule` removes the rule.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct UpdateEvent {
    /// 1-200 characters (trimmed).
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"
    )]
    pub title: Option<String>,
    /// Up to 4,000 characters.
    #[schema(max_length = 4000, pattern = r"^[^\u0000]*$")]
    pub description: Option<String>,
    /// Up to 500 characters.
    #[schema(max_length = 500, pattern = r"^[^\u0000]*$")]
    pub location: Option<String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub timezone: Option<String>,
    pub rrule: Option<String>,
    /// At most 500.
    #[schema(max_items = 500)]
    pub exdates: Option<Vec<DateTime<Utc>>>,
    /// At most 500.
    #[schema(max_items = 500)]
    pub rdates: Option<Vec<DateTime<Utc>>>,
}

/// A change to one occurrence; absent fields keep the series' values.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct UpdateOccurrence {
    /// 1-200 characters.
    #[schema(min_length = 1, max_length = 200, pattern = r"^[^\u0000]*$")]
    pub title: Option<String>,
    /// Up to 4,000 characters.
    #[schema(max_length = 4000, pattern = r"^[^\u0000]*$")]
    pub description: Option<String>,
    /// Up to 500 characters.
    #[schema(max_length = 500, pattern = r"^[^\u0000]*$")]
    pub location: Option<String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SplitRequest {
    /// Original start of the first occurrence of the new series.
    pub from: DateTime<Utc>,
    #[serde(default)]
    pub changes: UpdateEvent,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OverrideView {
    pub original_start: DateTime<Utc>,
    pub cancelled: bool,
    pub title: Option<String>,
    pub description: Option<String>,
    pub location: Option<String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventView {
    pub id: Uuid,
    pub community_id: Uuid,
    pub group_id: Option<Uuid>,
    pub room_id: Option<Uuid>,
    pub creator_id: Uuid,
    pub title: String,
    pub description: String,
    pub location: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub timezone: String,
    pub rrule: Option<String>,
    pub rdates: Vec<DateTime<Utc>>,
    pub exdates: Vec<DateTime<Utc>>,
    /// The series this one continues after a this-and-following split.
    pub split_from: Option<Uuid>,
    /// iCalendar SEQUENCE: moves on every change.
    pub sequence: i32,
    pub overrides: Vec<OverrideView>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RsvpStatus {
    Going,
    Maybe,
    Declined,
}

impl RsvpStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Going => "going",
            Self::Maybe => "maybe",
            Self::Declined => "declined",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "going" => Some(Self::Going),
            "maybe" => Some(Self::Maybe),
            "declined" => Some(Self::Declined),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, ToSchema)]
pub struct RsvpCounts {
    pub going: i32,
    pub maybe: i32,
    pub declined: i32,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OccurrenceView {
    pub event_id: Uuid,
    pub title: String,
    pub description: String,
    pub location: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// The key of this occurrence (RECURRENCE-ID), whatever its edits.
    pub original_start: DateTime<Utc>,
    pub cancelled: bool,
    pub timezone: String,
    pub group_id: Option<Uuid>,
    pub room_id: Option<Uuid>,
    pub rsvp: RsvpCounts,
    pub my_rsvp: Option<RsvpStatus>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OccurrencePage {
    /// Sorted by start.
    pub occurrences: Vec<OccurrenceView>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RsvpRequest {
    pub status: RsvpStatus,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RsvpView {
    pub event_id: Uuid,
    pub original_start: DateTime<Utc>,
    pub status: Option<RsvpStatus>,
    pub counts: RsvpCounts,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Attendee {
    pub user_id: Uuid,
    pub status: RsvpStatus,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttendeeList {
    pub counts: RsvpCounts,
    pub attendees: Vec<Attendee>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FeedToken {
    pub id: Uuid,
    /// Shown once, at creation: use it as `?token=` on `calendar.ics`.
    pub token: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FeedTokenList {
    pub tokens: Vec<FeedToken>,
}

/// What the calendar publishes (`crate::realtime::Event`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "type")]
pub enum CalendarEvent<'a> {
    /// A series was created, changed or deleted.
    #[serde(rename = "event.updated")]
    #[schema(title = "EventUpdatedEvent")]
    Updated {
        community_id: Uuid,
        event: &'a EventView,
        /// Set when the series was deleted.
        deleted: bool,
    },
    /// Reminder, to those going: an occurrence starts soon.
    #[serde(rename = "event.starting")]
    #[schema(title = "EventStartingEvent")]
    Starting {
        community_id: Uuid,
        event_id: Uuid,
        title: &'a str,
        original_start: DateTime<Utc>,
        starts_at: DateTime<Utc>,
        starts_in_s: i64,
    },
}

impl crate::realtime::Event for CalendarEvent<'_> {}
