//! Poll logic: create (poll row, then the message that carries it), vote, change, retract,
//! close, voters, and the views each caller may see.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use sea_orm::TransactionTrait;
use uuid::Uuid;

use super::Subject;
use super::lifecycle::{self, Kind};
use super::poll_model::PollEvent;
pub use super::poll_model::{
    CreatePoll, PollOptionView, PollView, ResultsVisibility, Voter, VoterPage,
};
use super::poll_repo::{self, NewPoll, OptionRow, PollRow};
use crate::error::{AppError, FieldError, ResultExt};
use crate::permissions::{Authorized, Perm, perm};
use crate::realtime::Audience;
use crate::state::AppState;

/// The viewer's relation to a poll, which decides what the view shows.
struct Viewer {
    privileged: bool,
    voted: bool,
    my_votes: Option<Vec<Uuid>>,
}

fn view(row: PollRow, options: Vec<OptionRow>, viewer: Option<&Viewer>) -> PollView {
    let now = Utc::now();
    let closed = row.is_closed(now);
    let results = ResultsVisibility::parse(&row.results_visibility);
    let public = closed || results == ResultsVisibility::Always;
    let results_visible = public
        || viewer
            .is_some_and(|v| v.privileged || (results == ResultsVisibility::AfterVote && v.voted));
    PollView {
        id: row.id,
        room_id: row.room_id,
        message_id: row.message_id,
        creator_id: row.creator_id,
        question: row.question,
        options: options
            .into_iter()
            .map(|o| PollOptionView {
                id: o.id,
                label: o.label,
                votes: results_visible.then_some(o.votes),
            })
            .collect(),
        multiple_choice: row.multiple_choice,
        max_choices: row.max_choices,
        anonymous: row.anonymous,
        results,
        closes_at: row.closes_at,
        closed,
        closed_at: row.closed_at.or(row.closes_at.filter(|_| closed)),
        voter_count: row.voter_count,
        results_visible,
        voted: viewer.map(|v| v.voted),
        my_votes: viewer.and_then(|v| v.my_votes.clone()),
        created_at: row.created_at,
    }
}

fn validate(input: &CreatePoll) -> Result<(String, Vec<String>), AppError> {
    let mut errors = Vec::new();
    let question = input.question.trim().to_owned();
    if question.is_empty() || question.chars().count() > 300 {
        errors.push(FieldError::new("question", "must be 1-300 characters"));
    }
    let options: Vec<String> = input.options.iter().map(|o| o.trim().to_owned()).collect();
    if !(2..=20).contains(&options.len()) {
        errors.push(FieldError::new("options", "must hold 2-20 options"));
    }
    if options
        .iter()
        .any(|o| o.is_empty() || o.chars().count() > 100)
    {
        errors.push(FieldError::new("options", "each must be 1-100 characters"));
    }
    if options.iter().collect::<HashSet<_>>().len() != options.len() {
        errors.push(FieldError::new("options", "must be distinct"));
    }
    match input.max_choices {
        Some(_) if !input.multiple_choice => errors.push(FieldError::new(
            "max_choices",
            "only multiple-choice polls take max_choices",
        )),
        Some(n) if n == 0 || n as usize > options.len() => errors.push(FieldError::new(
            "max_choices",
            "must be between 1 and the number of options",
        )),
        _ => {}
    }
    if let Some(at) = input.closes_at {
        let now = Utc::now();
        if at <= now || at > now + Duration::days(366) {
            errors.push(FieldError::new(
                "closes_at",
                "must be in the future, within 366 days",
            ));
        }
    }
    if errors.is_empty() {
        Ok((question, options))
    } else {
        Err(AppError::Validation(errors))
    }
}

/// A poll or survey posts a message, so someone muted in the room cannot post one either.
pub(super) fn require_send(perms: crate::permissions::PermSet) -> Result<(), AppError> {
    if perms.contains(Perm::SendMessages) {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "requires the send_messages permission here (a poll posts a message)".into(),
        ))
    }
}

/// Stores the poll, then posts the message that carries it (acked after commit like any
/// message); if the message cannot be stored, the poll is removed again.
pub async fn create(
    state: &AppState,
    auth: &Authorized<perm::CreatePolls>,
    input: CreatePoll,
) -> Result<PollView, AppError> {
    require_send(auth.perms())?;
    let (question, options) = validate(&input)?;
    let id = Uuid::now_v7();
    let new = NewPoll {
        id,
        room_id: auth.scope().id,
        creator_id: auth.user(),
        question: &question,
        multiple_choice: input.multiple_choice,
        max_choices: input.max_choices.map(|n| n as i32),
        anonymous: input.anonymous,
        results_visibility: input.results.as_str(),
        closes_at: input.closes_at,
        options: &options,
    };
    poll_repo::insert(&state.db, &new).await?;
    let place = (auth.scope().id, auth.user());
    let poll_id =
        lifecycle::carry(state, Kind::Poll, place, question, input.client_msg_id, id).await?;
    poll_for(state, auth.user(), poll_id).await
}

/// The poll and proof the user may read its room; a poll in a room they cannot read is a 404.
async fn readable(
    state: &AppState,
    user: Uuid,
    poll_id: Uuid,
) -> Result<(PollRow, Authorized<perm::ReadHistory>), AppError> {
    let row = poll_repo::poll(&state.db, poll_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let auth = state.permissions.room_reader(user, row.room_id).await?;
    Ok((row, auth))
}

fn privileged(row: &PollRow, auth: &Authorized<perm::ReadHistory>) -> bool {
    lifecycle::privileged(row.creator_id, auth)
}

async fn viewer(
    state: &AppState,
    row: &PollRow,
    auth: &Authorized<perm::ReadHistory>,
) -> Result<Viewer, AppError> {
    let key = state.polls.ballots.voter(row.id, auth.user());
    let voted = poll_repo::has_ballot(&state.db, row.id, &key).await?;
    let my_votes = if row.anonymous {
        None
    } else {
        Some(poll_repo::my_votes(&state.db, row.id, auth.user()).await?)
    };
    Ok(Viewer {
        privileged: privileged(row, auth),
        voted,
        my_votes,
    })
}

/// The poll as this user may see it.
pub async fn poll_for(state: &AppState, user: Uuid, poll_id: Uuid) -> Result<PollView, AppError> {
    let (row, auth) = readable(state, user, poll_id).await?;
    let viewer = viewer(state, &row, &auth).await?;
    let options = poll_repo::options(&state.db, row.id).await?;
    Ok(view(row, options, Some(&viewer)))
}

fn closed_conflict() -> AppError {
    AppError::Conflict {
        detail: "the poll is closed".into(),
        fields: vec![],
    }
}

fn check_choices(
    row: &PollRow,
    options: &[OptionRow],
    chosen: &[Uuid],
) -> Result<Vec<Uuid>, AppError> {
    let known: HashSet<Uuid> = options.iter().map(|o| o.id).collect();
    let unique: HashSet<Uuid> = chosen.iter().copied().collect();
    let field = |msg: &str| AppError::field("option_ids", msg.to_owned());
    if chosen.is_empty() {
        return Err(field("choose at least one option"));
    }
    if unique.len() != chosen.len() {
        return Err(field("must not repeat an option"));
    }
    if !unique.is_subset(&known) {
        return Err(field("not an option of this poll"));
    }
    if !row.multiple_choice && chosen.len() > 1 {
        return Err(field("this poll takes one choice"));
    }
    if let Some(max) = row.max_choices
        && chosen.len() > max as usize
    {
        return Err(field(&format!("at most {max} choices")));
    }
    let mut sorted = chosen.to_vec();
    sorted.sort_unstable();
    Ok(sorted)
}

/// Votes, or replaces the caller's vote (polls that are not anonymous). Anonymous votes are
/// final: a second one is a 409.
pub async fn vote(
    state: &AppState,
    user: Uuid,
    poll_id: Uuid,
    chosen: &[Uuid],
) -> Result<PollView, AppError> {
    let (_, auth) = readable(state, user, poll_id).await?;
    if !auth.perms().contains(Perm::Vote) {
        return Err(AppError::Forbidden(
            "requires the vote permission here".into(),
        ));
    }
    let key = state.polls.ballots.voter(poll_id, user);
    let txn = state.db.begin().await?;
    let row = poll_repo::lock(&txn, poll_id)
        .await?
        .ok_or(AppError::NotFound)?;
    if row.is_closed(Utc::now()) {
        return Err(closed_conflict());
    }
    let options = poll_repo::options(&txn, poll_id).await?;
    let chosen = check_choices(&row, &options, chosen)?;
    if row.anonymous {
        if poll_repo::has_ballot(&txn, poll_id, &key).await? {
            return Err(AppError::Conflict {
                detail: "you have already voted; anonymous votes cannot be changed".into(),
                fields: vec![],
            });
        }
        // The lock above makes this rare; the primary key still has the last word.
        poll_repo::cast_anonymous(&txn, poll_id, &key, &chosen)
            .await
            .on_unique("option_ids", "you have already voted")?;
    } else {
        poll_repo::replace_votes(&txn, poll_id, user, &key, &chosen).await?;
    }
    txn.commit().await?;
    state.polls.live.touch(state, Subject::Poll(poll_id));
    poll_for(state, user, poll_id).await
}

/// Withdraws the caller's vote (polls that are not anonymous, while open).
pub async fn retract(state: &AppState, user: Uuid, poll_id: Uuid) -> Result<(), AppError> {
    let (_, auth) = readable(state, user, poll_id).await?;
    if !auth.perms().contains(Perm::Vote) {
        return Err(AppError::Forbidden(
            "requires the vote permission here".into(),
        ));
    }
    let key = state.polls.ballots.voter(poll_id, user);
    let txn = state.db.begin().await?;
    let row = poll_repo::lock(&txn, poll_id)
        .await?
        .ok_or(AppError::NotFound)?;
    if row.anonymous {
        return Err(AppError::Conflict {
            detail: "anonymous votes cannot be retracted: nothing records which was yours".into(),
            fields: vec![],
        });
    }
    if row.is_closed(Utc::now()) {
        return Err(closed_conflict());
    }
    let changed = poll_repo::retract(&txn, poll_id, user, &key).await?;
    txn.commit().await?;
    if changed {
        state.polls.live.touch(state, Subject::Poll(poll_id));
    }
    Ok(())
}

/// The creator, or anyone with manage_messages in the room, closes the poll (idempotent).
pub async fn close(state: &AppState, user: Uuid, poll_id: Uuid) -> Result<PollView, AppError> {
    let (row, auth) = readable(state, user, poll_id).await?;
    if !privileged(&row, &auth) {
        return Err(AppError::Forbidden(
            "only the poll's creator or someone with manage_messages can close it".into(),
        ));
    }
    if lifecycle::close(&state.db, Kind::Poll, poll_id, user).await? {
        state.polls.live.touch(state, Subject::Poll(poll_id));
    }
    poll_for(state, user, poll_id).await
}

/// Who voted for what, for polls that are not anonymous, to those who may see the results.
pub async fn voters(
    state: &AppState,
    user: Uuid,
    poll_id: Uuid,
    option: Option<Uuid>,
    after: Option<&str>,
    limit: u64,
) -> Result<VoterPage, AppError> {
    let (row, auth) = readable(state, user, poll_id).await?;
    if row.anonymous {
        return Err(AppError::Conflict {
            detail: "the poll is anonymous: nobody can list its voters".into(),
            fields: vec![],
        });
    }
    let viewer = viewer(state, &row, &auth).await?;
    let options = poll_repo::options(&state.db, poll_id).await?;
    if option.is_some_and(|o| !options.iter().any(|x| x.id == o)) {
        return Err(AppError::field("option_id", "not an option of this poll"));
    }
    if !view(row, options, Some(&viewer)).results_visible {
        return Err(AppError::Forbidden(
            "the results of this poll are not visible to you yet".into(),
        ));
    }
    let after = after.map(parse_cursor).transpose()?;
    let rows = poll_repo::voters(&state.db, poll_id, option, after, limit + 1).await?;
    let more = rows.len() as u64 > limit;
    let voters: Vec<Voter> = rows
        .into_iter()
        .take(limit as usize)
        .map(|r| Voter {
            user_id: r.user_id,
            option_id: r.option_id,
            voted_at: r.voted_at,
        })
        .collect();
    let next_cursor = voters.last().filter(|_| more).map(|v| {
        crate::shared::cursor::Cursor::encode(&format!(
            "{}|{}|{}",
            v.voted_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            v.user_id,
            v.option_id
        ))
    });
    Ok(VoterPage {
        voters,
        next_cursor,
    })
}

fn parse_cursor(raw: &str) -> Result<(DateTime<Utc>, Uuid, Uuid), AppError> {
    let bad = || AppError::field("cursor", "not a cursor this endpoint gave out");
    let key = crate::shared::cursor::Cursor::decode(raw)?.0;
    let mut parts = key.split('|');
    let (Some(at), Some(user), Some(option), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    Ok((
        DateTime::parse_from_rfc3339(at)
            .map_err(|_| bad())?
            .to_utc(),
        user.parse().map_err(|_| bad())?,
        option.parse().map_err(|_| bad())?,
    ))
}

/// Sends the room the poll as everybody may see it: tallies only when they are public.
pub async fn publish_update(state: &AppState, poll_id: Uuid) -> Result<(), AppError> {
    let Some(row) = poll_repo::poll(&state.db, poll_id).await? else {
        return Ok(());
    };
    let room = row.room_id;
    let options = poll_repo::options(&state.db, poll_id).await?;
    let poll = view(row, options, None);
    let event = PollEvent::Updated {
        room_id: room,
        poll: &poll,
    };
    state.bus.publish(Audience::Room(room), None, &event).await;
    Ok(())
}
