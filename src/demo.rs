//! `guildhall demo-seed`: demo accounts (and, as features land, the data that shows them off).
//! Idempotent: existing demo data is kept and reported.

use uuid::Uuid;

use crate::calendar;
use crate::communities::{self, tree};
use crate::config::Config;
use crate::error::AppError;
use crate::identity::{Password, Username, service};
use crate::messages;
use crate::permissions::lines::Subject;
use crate::permissions::{Authorized, Perm, PermSet, perm};
use crate::polls;
use crate::state::AppState;

pub const DEMO_PASSWORD: &str = "guildhall-demo";
const DEMO_USERS: [(&str, &str); 3] = [
    ("alice", "Alice Liddell"),
    ("bob", "Bob Builder"),
    ("carol", "Carol Danvers"),
];

pub async fn seed(config: Config) -> anyhow::Result<()> {
    let state = crate::App::build(Config {
        bind: "127.0.0.1:0".parse()?,
        ..config
    })
    .await?
    .state()
    .clone();
    println!("Demo accounts (password for all: {DEMO_PASSWORD}):");
    for (username, display_name) in DEMO_USERS {
        let status = ensure_user(&state, username, display_name).await?;
        println!("  {username:<8} {display_name:<16} {status}");
    }
    seed_community(&state).await.map_err(to_anyhow)
}

const DEMO_COMMUNITY: &str = "Guildhall Demo";

async fn user_id(state: &AppState, username: &str) -> Result<Uuid, AppError> {
    service::user_by_username(&state.db, username)
        .await?
        .map(|u| u.id)
        .ok_or(AppError::NotFound)
}

/// A public community owned by alice: groups, a subgroup, public and private rooms, a custom
/// role granted at a group, and a room where only some may post.
async fn seed_community(state: &AppState) -> Result<(), AppError> {
    let (alice, bob, carol) = (
        user_id(state, "alice").await?,
        user_id(state, "bob").await?,
        user_id(state, "carol").await?,
    );
    let mine = communities::service::mine(state, alice, None, 100).await?;
    if let Some(existing) = mine.items.iter().find(|c| c.name == DEMO_COMMUNITY) {
        println!(
            "Demo community {:?} (exists): {}",
            DEMO_COMMUNITY, existing.id
        );
        return Ok(());
    }
    let new = communities::service::NewCommunity {
        name: DEMO_COMMUNITY.into(),
        description: "Everything Guildhall can do, in one place".into(),
        visibility: "public",
    };
    let community = communities::service::create(state, alice, new).await?;
    let root: Authorized<perm::View> = state.permissions.require(alice, community.id).await?;
    let general = tree::create_group(state, &root, "General", None).await?;
    let projects = tree::create_group(state, &root, "Projects", None).await?;
    let rust = tree::create_group(state, &root, "Rust", Some(projects.id)).await?;
    let room = |name: &str, group: Option<Uuid>, private: bool| tree::NewRoomInput {
        name: name.into(),
        topic: String::new(),
        group_id: group,
        private,
    };
    let announcements =
        tree::create_room(state, &root, room("announcements", Some(general.id), false)).await?;
    let random = tree::create_room(state, &root, room("random", Some(general.id), false)).await?;
    let rust_help =
        tree::create_room(state, &root, room("rust-help", Some(rust.id), false)).await?;
    tree::create_room(state, &root, room("staff", None, true)).await?;
    for user in [bob, carol] {
        let visitor: Authorized<perm::View> = state.permissions.require(user, community.id).await?;
        communities::service::join(state, &visitor).await?;
    }
    let manage: Authorized<perm::ManageRoles> =
        state.permissions.require(alice, community.id).await?;
    let helper = state
        .permissions
        .create_role(
            &manage,
            "Helper",
            PermSet::of(&[
                Perm::View,
                Perm::ReadHistory,
                Perm::SendMessages,
                Perm::ManageMessages,
            ]),
        )
        .await?;
    let at_projects: Authorized<perm::ManageRoles> =
        state.permissions.require(alice, projects.id).await?;
    state
        .permissions
        .grant(&at_projects, bob, helper.id)
        .await?;
    let roles = state.permissions.roles(&root).await?;
    let member_role = roles
        .iter()
        .find(|r| r.name == "member")
        .map(|r| r.id)
        .ok_or(AppError::NotFound)?;
    let at_announcements: Authorized<perm::ManagePermissions> =
        state.permissions.require(alice, announcements.id).await?;
    let send = PermSet::of(&[Perm::SendMessages]);
    state
        .permissions
        .set_override(
            &at_announcements,
            Subject::Role(member_role),
            PermSet::EMPTY,
            send,
        )
        .await?;
    state
        .permissions
        .set_override(
            &at_announcements,
            Subject::User(carol),
            send,
            PermSet::EMPTY,
        )
        .await?;
    let conversation = [
        (random.id, alice, "Welcome to Guildhall! Say hi"),
        (random.id, bob, "hi all, @carol are you around?"),
        (random.id, carol, "here! the realtime stuff is neat"),
        (
            rust_help.id,
            carol,
            "how do I share state between axum handlers?",
        ),
        (
            rust_help.id,
            bob,
            "put it in an AppState with Arc inside and use State<AppState>",
        ),
    ];
    for (room_id, sender, content) in conversation {
        let proof: Authorized<perm::SendMessages> =
            state.permissions.require(sender, room_id).await?;
        let input = messages::service::SendInput {
            content: content.into(),
            client_msg_id: None,
            reply_to: None,
            attachment_ids: Vec::new(),
        };
        messages::service::send(state, &proof, input).await?;
    }
    seed_poll(state, random.id, alice, &[bob, carol]).await?;
    seed_survey(state, random.id, alice, bob).await?;
    seed_event(state, community.id, alice, &[bob, carol]).await?;
    println!(
        "Demo community {DEMO_COMMUNITY:?} (created): {}",
        community.id
    );
    println!(
        "  groups General, Projects > Rust; rooms announcements, random, rust-help, staff (private)"
    );
    println!("  bob is Helper in Projects; only carol (and owners) may post in #announcements");
    println!("  a short conversation in #random and #rust-help");
    println!(
        "  an open poll in #random (bob and carol have voted) and a survey (bob has answered)"
    );
    Ok(())
}

/// An open multiple-choice poll by `author`; each voter picks the option at their position.
async fn seed_poll(
    state: &AppState,
    room: Uuid,
    author: Uuid,
    voters: &[Uuid],
) -> Result<(), AppError> {
    let proof: Authorized<perm::CreatePolls> = state.permissions.require(author, room).await?;
    let input = polls::poll_service::CreatePoll {
        question: "Where should the next meetup be?".into(),
        options: vec!["Berlin".into(), "Lisbon".into(), "Online".into()],
        multiple_choice: true,
        max_choices: Some(2),
        anonymous: false,
        results: polls::poll_service::ResultsVisibility::AfterVote,
        closes_at: Some(chrono::Utc::now() + chrono::Duration::days(7)),
        client_msg_id: None,
    };
    let poll = polls::poll_service::create(state, &proof, input).await?;
    for (voter, option) in voters.iter().zip(poll.options.iter().skip(1)) {
        polls::poll_service::vote(state, *voter, poll.id, &[option.id]).await?;
    }
    Ok(())
}

async fn ensure_user(
    state: &AppState,
    username: &str,
    display_name: &str,
) -> anyhow::Result<&'static str> {
    if service::user_by_username(&state.db, username)
        .await
        .map_err(to_anyhow)?
        .is_some()
    {
        return Ok("(exists)");
    }
    let name = Username::parse(username).map_err(|e| anyhow::anyhow!(e.message))?;
    let password = Password::parse(DEMO_PASSWORD, &name).map_err(|e| anyhow::anyhow!(e.message))?;
    service::create_user(state, &name, &password, display_name)
        .await
        .map_err(to_anyhow)?;
    Ok("(created)")
}

fn to_anyhow(err: AppError) -> anyhow::Error {
    match err {
        AppError::Internal(cause) => cause,
        other => anyhow::anyhow!(other.detail()),
    }
}

/// A three-question survey by `author`, answered by `respondent`.
async fn seed_survey(
    state: &AppState,
    room: Uuid,
    author: Uuid,
    respondent: Uuid,
) -> Result<(), AppError> {
    use polls::survey_service::{self as surveys, QuestionKind, SurveyQuestionInput};
    let question = |kind, prompt: &str, options: Option<Vec<String>>| SurveyQuestionInput {
        kind,
        prompt: prompt.into(),
        options,
        required: true,
        scale: None,
        max_choices: None,
    };
    let proof: Authorized<perm::CreatePolls> = state.permissions.require(author, room).await?;
    let input = surveys::CreateSurvey {
        title: "How do you use Guildhall?".into(),
        description: Some("Three questions; results are shown once you have answered.".into()),
        questions: vec![
            question(
                QuestionKind::Single,
                "Which client do you use most?",
                Some(vec!["Web".into(), "Mobile".into(), "scripts/chat".into()]),
            ),
            question(
                QuestionKind::Rating,
                "How happy are you with it (1-5)?",
                None,
            ),
            question(QuestionKind::Text, "What should we build next?", None),
        ],
        results: surveys::SurveyResultsVisibility::AfterResponse,
        closes_at: Some(chrono::Utc::now() + chrono::Duration::days(14)),
        client_msg_id: None,
    };
    let survey = surveys::create(state, &proof, input).await?;
    let (choice, rating, text) = (
        &survey.questions[0],
        &survey.questions[1],
        &survey.questions[2],
    );
    let answer = |question_id| surveys::SurveyAnswerInput {
        question_id,
        option_ids: None,
        text: None,
        rating: None,
    };
    let answers = [
        surveys::SurveyAnswerInput {
            option_ids: Some(vec![choice.options[2].id]),
            ..answer(choice.id)
        },
        surveys::SurveyAnswerInput {
            rating: Some(5),
            ..answer(rating.id)
        },
        surveys::SurveyAnswerInput {
            text: Some("Recurring events, please".into()),
            ..answer(text.id)
        },
    ];
    surveys::respond(state, respondent, survey.id, &answers).await?;
    Ok(())
}

/// A weekly meetup at 18:00 Berlin time from next Thursday, with RSVPs for its first occurrence.
async fn seed_event(
    state: &AppState,
    community: Uuid,
    author: Uuid,
    going: &[Uuid],
) -> Result<(), AppError> {
    use chrono::{Datelike, TimeZone};
    let berlin: chrono_tz::Tz = "Europe/Berlin".parse().map_err(|_| AppError::NotFound)?;
    let today = chrono::Utc::now().with_timezone(&berlin).date_naive();
    let ahead = (7 + 3 - i64::from(today.weekday().num_days_from_monday())) % 7;
    let thursday = today + chrono::Duration::days(if ahead == 0 { 7 } else { ahead });
    let starts_at = berlin
        .from_local_datetime(&thursday.and_hms_opt(18, 0, 0).expect("a valid time"))
        .single()
        .ok_or(AppError::NotFound)?
        .with_timezone(&chrono::Utc);
    let input = calendar::CreateEvent {
        title: "Weekly meetup".into(),
        description: "Demos, questions, and what we build next.".into(),
        location: "#random and the big table".into(),
        starts_at,
        ends_at: starts_at + chrono::Duration::hours(1),
        timezone: "Europe/Berlin".into(),
        rrule: Some("FREQ=WEEKLY;BYDAY=TH;COUNT=12".into()),
        exdates: Vec::new(),
        rdates: Vec::new(),
        group_id: None,
        room_id: None,
    };
    let event = calendar::service::create(state, author, community, input).await?;
    for user in going {
        calendar::service::set_rsvp(
            state,
            *user,
            event.id,
            starts_at,
            calendar::RsvpStatus::Going,
        )
        .await?;
    }
    Ok(())
}
