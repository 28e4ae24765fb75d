//! Polls end to end: create, vote, change, retract, close (by hand and on schedule), who sees
//! tallies, anonymous ballots that leave no voter linked to a choice, concurrency, live events,
//! the carrying message, voters lists, validation and access.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use reqwest::{Method, Response, StatusCode};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, Value as DbValue};
use serde_json::{Value, json};
use tokio::time::Instant;
use uuid::Uuid;

use crate::helpers::{Session, TestApp, assert_problem, problem_fields, spawn_app, spawn_app_with};
use crate::realtime::{body_of, community_of, deny_in_room, role_id, room_with_two};
use crate::ws::WsClient;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// An app that lets tests register dozens of users quickly.
async fn spawn_app_unlimited() -> TestApp {
    spawn_app_with(|s| {
        s.insert("rate_limits".into(), "off".into());
    })
    .await
}

/// Registers `names` and joins each to `community` (all at once).
async fn members(app: &TestApp, community: &str, names: &[String]) -> Vec<Session> {
    let sessions = join_all(names.iter().map(|n| app.register(n))).await;
    join_all(sessions.iter().map(|s| async move {
        let response = app
            .post(
                &format!("/v1/communities/{community}/join"),
                Some(&s.access_token),
                json!({}),
            )
            .await;
        assert!(response.status().is_success(), "join {}", s.username);
    }))
    .await;
    sessions
}

/// `room_with_two` plus `n` more members of the same community.
async fn room_with(app: &TestApp, n: usize) -> (Session, Session, Vec<Session>, String) {
    let (alice, bob, room) = room_with_two(app).await;
    let community = community_of(app, &alice, &room).await;
    let names: Vec<String> = (0..n).map(|i| format!("voter{i:02}")).collect();
    let others = members(app, &community, &names).await;
    (alice, bob, others, room)
}

async fn post_poll(app: &TestApp, user: &Session, room: &str, body: Value) -> Response {
    app.post(
        &format!("/v1/rooms/{room}/polls"),
        Some(&user.access_token),
        body,
    )
    .await
}

async fn create_poll(app: &TestApp, user: &Session, room: &str, body: Value) -> Value {
    let response = post_poll(app, user, room, body).await;
    body_of(response, StatusCode::CREATED, "create poll").await
}

/// A poll body with `extra` fields merged in.
fn poll_body(options: &[&str], extra: Value) -> Value {
    let mut body = json!({"question": "Where do we meet?", "options": options});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

fn poll_id(poll: &Value) -> String {
    poll["id"].as_str().unwrap().to_owned()
}

fn option_ids(poll: &Value) -> Vec<String> {
    poll["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Each option's `votes` (None where the viewer may not see it).
fn tallies(poll: &Value) -> Vec<Option<i64>> {
    poll["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["votes"].as_i64())
        .collect()
}

fn counts(values: &[i64]) -> Vec<Option<i64>> {
    values.iter().copied().map(Some).collect()
}

fn hidden(n: usize) -> Vec<Option<i64>> {
    vec![None; n]
}

fn my_votes(poll: &Value) -> Option<BTreeSet<String>> {
    poll["my_votes"]
        .as_array()
        .map(|ids| ids.iter().map(|i| i.as_str().unwrap().to_owned()).collect())
}

fn set_of(ids: &[&String]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).clone()).collect()
}

/// `PUT /v1/polls/{poll}/vote`; the request is built at once, so the future borrows nothing
/// (many can be in flight together).
fn put_vote(
    app: &TestApp,
    user: &Session,
    poll: &str,
    options: &[&String],
) -> impl Future<Output = Response> + use<> {
    let request = app
        .client
        .put(app.url(&format!("/v1/polls/{poll}/vote")))
        .bearer_auth(&user.access_token)
        .json(&json!({"option_ids": options}));
    async move { request.send().await.expect("request sent") }
}

async fn vote_ok(app: &TestApp, user: &Session, poll: &str, options: &[&String]) -> Value {
    let response = put_vote(app, user, poll, options).await;
    body_of(
        response,
        StatusCode::OK,
        &format!("{} votes", user.username),
    )
    .await
}

async fn retract(app: &TestApp, user: &Session, poll: &str) -> Response {
    app.request(
        Method::DELETE,
        &format!("/v1/polls/{poll}/vote"),
        Some(&user.access_token),
        None,
    )
    .await
}

async fn get_poll_response(app: &TestApp, user: &Session, poll: &str) -> Response {
    app.get(&format!("/v1/polls/{poll}"), Some(&user.access_token))
        .await
}

async fn get_poll(app: &TestApp, user: &Session, poll: &str) -> Value {
    let response = get_poll_response(app, user, poll).await;
    body_of(
        response,
        StatusCode::OK,
        &format!("{} gets poll", user.username),
    )
    .await
}

async fn close(app: &TestApp, user: &Session, poll: &str) -> Response {
    app.post(
        &format!("/v1/polls/{poll}/close"),
        Some(&user.access_token),
        json!({}),
    )
    .await
}

async fn voters_page(app: &TestApp, user: &Session, poll: &str, query: &str) -> Response {
    app.get(
        &format!("/v1/polls/{poll}/voters?{query}"),
        Some(&user.access_token),
    )
    .await
}

fn in_seconds(s: i64) -> String {
    (Utc::now() + chrono::Duration::seconds(s)).to_rfc3339()
}

fn stmt(sql: &str, values: impl IntoIterator<Item = DbValue>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

async fn count(db: &DatabaseConnection, sql: &str, values: Vec<DbValue>) -> i64 {
    let row = db
        .query_one_raw(stmt(sql, values))
        .await
        .unwrap()
        .expect("a count row");
    row.try_get("", "n").unwrap()
}

fn uuid(s: &str) -> Uuid {
    s.parse().unwrap()
}

/// The next `poll.updated` of `poll` before `deadline` (other frames are skipped).
async fn next_update(ws: &mut WsClient, poll: &str, deadline: Instant) -> Option<Value> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        let frame = ws.next(left).await?;
        if frame["type"] == "poll.updated" && frame["poll"]["id"] == poll {
            return Some(frame);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Single choice
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn single_choice_poll_counts_one_option_per_voter() {
    let app = spawn_app().await;
    let (alice, bob, room) = room_with_two(&app).await;

    let poll = create_poll(
        &app,
        &alice,
        &room,
        json!({"question": "  Lunch?  ", "options": ["Pizza", " Sushi ", "Salad"]}),
    )
    .await;
    assert_eq!(poll["room_id"], room);
    assert_eq!(poll["creator_id"], alice.user_id.to_string());
    assert_eq!(poll["question"], "Lunch?");
    let labels: Vec<&str> = poll["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["Pizza", "Sushi", "Salad"]);
    assert_eq!(poll["multiple_choice"], false);
    assert_eq!(poll["max_choices"], Value::Null);
    assert_eq!(poll["anonymous"], false);
    assert_eq!(poll["results"], "after_vote");
    assert_eq!(poll["closed"], false);
    assert_eq!(poll["closed_at"], Value::Null);
    assert_eq!(poll["closes_at"], Value::Null);
    assert_eq!(poll["voter_count"], 0);
    assert_eq!(poll["voted"], false);
    assert_eq!(poll["my_votes"], json!([]));
    assert!(poll["message_id"].as_str().is_some(), "{poll}");
    assert_eq!(
        tallies(&poll),
        counts(&[0, 0, 0]),
        "the creator sees tallies"
    );
    let id = poll_id(&poll);
    let opts = option_ids(&poll);

    let voted = vote_ok(&app, &bob, &id, &[&opts[1]]).await;
    assert_eq!(voted["voter_count"], 1);
    assert_eq!(voted["voted"], true);
    assert_eq!(my_votes(&voted), Some(set_of(&[&opts[1]])));
    assert_eq!(tallies(&voted), counts(&[0, 1, 0]));
    assert_eq!(
        tallies(&get_poll(&app, &alice, &id).await),
        counts(&[0, 1, 0])
    );

    // Two options in a single-choice poll, an unknown option, none, a repeat: 422 on option_ids.
    let unknown = Uuid::now_v7().to_string();
    let bad: [Vec<&String>; 4] = [
        vec![&opts[0], &opts[2]],
        vec![&unknown],
        vec![],
        vec![&opts[0], &opts[0]],
    ];
    for choice in bad {
        let response = put_vote(&app, &bob, &id, &choice).await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(problem_fields(&problem), ["option_ids"], "{choice:?}");
    }
    // An option of another poll is just as unknown here.
    let other = create_poll(&app, &alice, &room, poll_body(&["x", "y"], json!({}))).await;
    let foreign = option_ids(&other);
    let response = put_vote(&app, &bob, &id, &[&foreign[0]]).await;
    let problem = assert_problem(response, 422, "validation_failed").await;
    assert_eq!(problem_fields(&problem), ["option_ids"]);

    let after = get_poll(&app, &bob, &id).await;
    assert_eq!(
        tallies(&after),
        counts(&[0, 1, 0]),
        "refused votes change nothing"
    );
    assert_eq!(after["voter_count"], 1);
    assert_eq!(my_votes(&after), Some(set_of(&[&opts[1]])));
    assert_eq!(
        tallies(&get_poll(&app, &alice, &poll_id(&other)).await),
        counts(&[0, 0])
    );

    // A repeated client_msg_id returns the first poll and stores no second one.
    let body = poll_body(&["a", "b"], json!({"client_msg_id": "poll-1"}));
    let first = create_poll(&app, &alice, &room, body.clone()).await;
    let again = post_poll(&app, &alice, &room, body).await;
    let again = body_of(again, StatusCode::CREATED, "repeat create").await;
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["message_id"], first["message_id"]);
    let db = app.db().await;
    let polls = count(&db, "SELECT count(*) AS n FROM polls", vec![]).await;
    assert_eq!(polls, 3);
}

// ---------------------------------------------------------------------------------------------
// 2. Multiple choice
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn multiple_choice_respects_max_choices_and_counts_each_option() {
    let app = spawn_app().await;
    let (alice, bob, others, room) = room_with(&app, 2).await;
    let (carol, dave) = (&others[0], &others[1]);

    let poll = create_poll(
        &app,
        &alice,
        &room,
        poll_body(
            &["Mon", "Tue", "Wed"],
            json!({"multiple_choice": true, "max_choices": 2, "results": "always"}),
        ),
    )
    .await;
    assert_eq!(poll["multiple_choice"], true);
    assert_eq!(poll["max_choices"], 2);
    let id = poll_id(&poll);
    let o = option_ids(&poll);

    let bob_view = vote_ok(&app, &bob, &id, &[&o[0], &o[1]]).await;
    assert_eq!(my_votes(&bob_view), Some(set_of(&[&o[0], &o[1]])));
    vote_ok(&app, carol, &id, &[&o[2], &o[0]]).await;
    let response = put_vote(&app, dave, &id, &[&o[0], &o[1], &o[2]]).await;
    let problem = assert_problem(response, 422, "validation_failed").await;
    assert_eq!(problem_fields(&problem), ["option_ids"]);
    vote_ok(&app, dave, &id, &[&o[1]]).await;

    let view = get_poll(&app, &bob, &id).await;
    assert_eq!(tallies(&view), counts(&[2, 2, 1]));
    assert_eq!(view["voter_count"], 3);

    // Without max_choices every option may be picked.
    let open = create_poll(
        &app,
        &alice,
        &room,
        poll_body(&["a", "b", "c"], json!({"multiple_choice": true})),
    )
    .await;
    let oid = poll_id(&open);
    let p = option_ids(&open);
    let all = vote_ok(&app, &bob, &oid, &[&p[0], &p[1], &p[2]]).await;
    assert_eq!(tallies(&all), counts(&[1, 1, 1]));
    assert_eq!(all["voter_count"], 1);
}

// ---------------------------------------------------------------------------------------------
// 3. Change and retract
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn changing_a_vote_moves_the_count_and_retracting_removes_it() {
    let app = spawn_app().await;
    let (alice, bob, others, room) = room_with(&app, 1).await;
    let carol = &others[0];
    let poll = create_poll(&app, &alice, &room, poll_body(&["A", "B", "C"], json!({}))).await;
    let id = poll_id(&poll);
    let o = option_ids(&poll);

    vote_ok(&app, &bob, &id, &[&o[0]]).await;
    vote_ok(&app, carol, &id, &[&o[0]]).await;
    assert_eq!(
        tallies(&get_poll(&app, &alice, &id).await),
        counts(&[2, 0, 0])
    );

    let changed = vote_ok(&app, &bob, &id, &[&o[1]]).await;
    assert_eq!(tallies(&changed), counts(&[1, 1, 0]), "the vote moved");
    assert_eq!(changed["voter_count"], 2, "still two voters");
    assert_eq!(my_votes(&changed), Some(set_of(&[&o[1]])));
    // The same vote again changes nothing.
    let same = vote_ok(&app, &bob, &id, &[&o[1]]).await;
    assert_eq!(tallies(&same), counts(&[1, 1, 0]));
    assert_eq!(same["voter_count"], 2);

    let response = retract(&app, &bob, &id).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let bob_view = get_poll(&app, &bob, &id).await;
    assert_eq!(bob_view["voted"], false);
    assert_eq!(bob_view["my_votes"], json!([]));
    assert_eq!(bob_view["voter_count"], 1);
    assert_eq!(
        tallies(&bob_view),
        hidden(3),
        "after_vote: hidden again once bob no longer voted"
    );
    let creator = get_poll(&app, &alice, &id).await;
    assert_eq!(tallies(&creator), counts(&[1, 0, 0]));
    assert_eq!(creator["voter_count"], 1);
    // Retracting without a vote is harmless.
    let again = retract(&app, &bob, &id).await;
    assert_eq!(again.status(), StatusCode::NO_CONTENT);
    assert_eq!(get_poll(&app, &alice, &id).await["voter_count"], 1);

    // Multiple choice: a change replaces the whole set.
    let multi = create_poll(
        &app,
        &alice,
        &room,
        poll_body(&["A", "B", "C"], json!({"multiple_choice": true})),
    )
    .await;
    let mid = poll_id(&multi);
    let m = option_ids(&multi);
    vote_ok(&app, &bob, &mid, &[&m[0], &m[1]]).await;
    let replaced = vote_ok(&app, &bob, &mid, &[&m[1], &m[2]]).await;
    assert_eq!(tallies(&replaced), counts(&[0, 1, 1]));
    assert_eq!(my_votes(&replaced), Some(set_of(&[&m[1], &m[2]])));
    assert_eq!(replaced["voter_count"], 1);
    let db = app.db().await;
    let rows = count(
        &db,
        "SELECT count(*) AS n FROM poll_votes WHERE poll_id = $1",
        vec![uuid(&mid).into()],
    )
    .await;
    assert_eq!(rows, 2);
}

// ---------------------------------------------------------------------------------------------
// 4. Anonymous polls store no link between a voter and a choice
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn anonymous_votes_leave_no_user_linked_to_a_choice_anywhere_in_the_database() {
    let app = spawn_app().await;
    let (alice, bob, others, room) = room_with(&app, 3).await;
    let poll = create_poll(
        &app,
        &alice,
        &room,
        poll_body(
            &["red", "green", "blue"],
            json!({"anonymous": true, "multiple_choice": true, "results": "always"}),
        ),
    )
    .await;
    assert_eq!(poll["anonymous"], true);
    assert_eq!(poll["my_votes"], Value::Null);
    let id = poll_id(&poll);
    let o = option_ids(&poll);

    let voters: Vec<&Session> = std::iter::once(&bob).chain(others.iter()).collect();
    let choices: [Vec<&String>; 4] = [
        vec![&o[0]],
        vec![&o[0], &o[2]],
        vec![&o[1]],
        vec![&o[0], &o[1], &o[2]],
    ];
    for (voter, choice) in voters.iter().zip(&choices) {
        let view = vote_ok(&app, voter, &id, choice).await;
        assert_eq!(view["voted"], true);
        assert_eq!(
            view["my_votes"],
            Value::Null,
            "anonymous: no choices echoed"
        );
    }
    let view = get_poll(&app, &alice, &id).await;
    assert_eq!(view["voter_count"], 4);
    assert_eq!(tallies(&view), counts(&[3, 2, 2]));
    assert_eq!(
        get_poll(&app, &bob, &id).await["my_votes"],
        Value::Null,
        "a voter's own choices are not stored, so cannot be shown"
    );
    // Nobody can list who voted.
    let listing = voters_page(&app, &alice, &id, "").await;
    assert_problem(listing, 409, "conflict").await;

    // Every column of every table (and view) of schema public, as text.
    let db = app.db().await;
    let tables: Vec<String> = db
        .query_all_raw(stmt(
            "SELECT DISTINCT table_name::text AS name FROM information_schema.columns \
             WHERE table_schema = 'public' ORDER BY 1",
            [],
        ))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get("", "name").unwrap())
        .collect();
    for expected in [
        "polls",
        "poll_options",
        "poll_ballots",
        "poll_votes",
        "messages",
    ] {
        assert!(
            tables.iter().any(|t| t == expected),
            "{expected} in {tables:?}"
        );
    }
    let forms = |id: &str| {
        let id = uuid(id);
        [id.to_string(), id.simple().to_string()]
    };
    let voter_forms: Vec<(String, [String; 2])> = voters
        .iter()
        .map(|v| (v.username.clone(), forms(&v.user_id.to_string())))
        .collect();
    let choice_forms: Vec<String> = std::iter::once(&id)
        .chain(o.iter())
        .flat_map(|x| forms(x))
        .collect();
    let mut scanned = 0;
    for table in &tables {
        let rows = db
            .query_all_raw(stmt(
                &format!("SELECT t::text AS row FROM public.\"{table}\" t"),
                [],
            ))
            .await
            .unwrap();
        for row in rows {
            let text: String = row.try_get("", "row").unwrap();
            scanned += 1;
            for (name, user_forms) in &voter_forms {
                let names_user = user_forms.iter().any(|f| text.contains(f.as_str()));
                let names_choice = choice_forms.iter().any(|f| text.contains(f.as_str()));
                assert!(
                    !(names_user && names_choice),
                    "{table} links voter {name} to the poll or an option: {text}"
                );
            }
        }
    }
    assert!(scanned > 10, "scanned {scanned} rows");

    let pid = uuid(&id);
    let votes = count(
        &db,
        "SELECT count(*) AS n FROM poll_votes WHERE poll_id = $1",
        vec![pid.into()],
    )
    .await;
    assert_eq!(votes, 0, "poll_votes holds nothing for an anonymous poll");
    let ballots = db
        .query_all_raw(stmt(
            "SELECT b::text AS row, b.choices IS NULL AS erased, octet_length(b.voter_key) AS len \
             FROM poll_ballots b WHERE b.poll_id = $1",
            [pid.into()],
        ))
        .await
        .unwrap();
    assert_eq!(ballots.len(), 4, "one ballot per voter");
    for ballot in ballots {
        let text: String = ballot.try_get("", "row").unwrap();
        let erased: bool = ballot.try_get("", "erased").unwrap();
        let len: i32 = ballot.try_get("", "len").unwrap();
        assert!(erased, "choices erased: {text}");
        assert_eq!(len, 32);
        for (name, user_forms) in &voter_forms {
            assert!(
                !user_forms.iter().any(|f| text.contains(f.as_str())),
                "ballot holds {name}'s user id: {text}"
            );
        }
    }
    // The stored tallies still equal what was cast.
    let stored = db
        .query_all_raw(stmt(
            "SELECT votes FROM poll_options WHERE poll_id = $1 ORDER BY position",
            [pid.into()],
        ))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<i32>("", "votes").unwrap())
        .collect::<Vec<_>>();
    assert_eq!(stored, [3, 2, 2]);
}

// ---------------------------------------------------------------------------------------------
// 5. Anonymous votes are final
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_anonymous_vote_cannot_be_cast_twice_or_retracted() {
    let app = spawn_app().await;
    let (alice, bob, room) = room_with_two(&app).await;
    let poll = create_poll(
        &app,
        &alice,
        &room,
        poll_body(&["yes", "no"], json!({"anonymous": true})),
    )
    .await;
    let id = poll_id(&poll);
    let o = option_ids(&poll);
    vote_ok(&app, &bob, &id, &[&o[0]]).await;

    for choice in [&o[0], &o[1]] {
        let response = put_vote(&app, &bob, &id, &[choice]).await;
        assert_problem(response, 409, "conflict").await;
    }
    let response = retract(&app, &bob, &id).await;
    assert_problem(response, 409, "conflict").await;

    let view = get_poll(&app, &alice, &id).await;
    assert_eq!(tallies(&view), counts(&[1, 0]), "tally unchanged");
    assert_eq!(view["voter_count"], 1);
    let mine = get_poll(&app, &bob, &id).await;
    assert_eq!(mine["voted"], true);
    assert_eq!(mine["my_votes"], Value::Null);
    assert_eq!(tallies(&mine), counts(&[1, 0]), "after_vote: bob voted");
}

// ---------------------------------------------------------------------------------------------
// 6. Concurrency
// ---------------------------------------------------------------------------------------------

/// Per option: the stored tally and a recount of `poll_votes`.
async fn tally_and_recount(db: &DatabaseConnection, poll: &str) -> Vec<(i32, i64)> {
    db.query_all_raw(stmt(
        "SELECT o.votes, (SELECT count(*) FROM poll_votes v WHERE v.option_id = o.id) AS recount \
         FROM poll_options o WHERE o.poll_id = $1 ORDER BY o.position",
        [uuid(poll).into()],
    ))
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            r.try_get::<i32>("", "votes").unwrap(),
            r.try_get::<i64>("", "recount").unwrap(),
        )
    })
    .collect()
}

/// `SELECT option_id, count(*) FROM poll_votes GROUP BY option_id` for the poll.
async fn recount(db: &DatabaseConnection, poll: &str) -> BTreeMap<String, i64> {
    db.query_all_raw(stmt(
        "SELECT option_id::text AS option, count(*) AS n FROM poll_votes \
         WHERE poll_id = $1 GROUP BY option_id",
        [uuid(poll).into()],
    ))
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            r.try_get::<String>("", "option").unwrap(),
            r.try_get::<i64>("", "n").unwrap(),
        )
    })
    .collect()
}

/// The poll's options' `votes` agree with the recount and `voter_count` with the distinct voters
/// (and with the ballots); returns the voter count.
async fn assert_consistent(app: &TestApp, viewer: &Session, poll: &str) -> i64 {
    let db = app.db().await;
    let view = get_poll(app, viewer, poll).await;
    let recounted = recount(&db, poll).await;
    for (option, votes) in option_ids(&view).iter().zip(tallies(&view)) {
        assert_eq!(
            votes,
            Some(recounted.get(option).copied().unwrap_or(0)),
            "option {option}: tally vs recount"
        );
    }
    for (stored, recount) in tally_and_recount(&db, poll).await {
        assert_eq!(i64::from(stored), recount);
    }
    let distinct = count(
        &db,
        "SELECT count(DISTINCT user_id) AS n FROM poll_votes WHERE poll_id = $1",
        vec![uuid(poll).into()],
    )
    .await;
    let ballots = count(
        &db,
        "SELECT count(*) AS n FROM poll_ballots WHERE poll_id = $1",
        vec![uuid(poll).into()],
    )
    .await;
    assert_eq!(
        view["voter_count"], distinct,
        "voter_count vs distinct voters"
    );
    assert_eq!(ballots, distinct, "one ballot per voter");
    distinct
}

#[tokio::test]
async fn fifty_parallel_votes_by_one_user_count_once() {
    let app = spawn_app().await;
    let (alice, bob, room) = room_with_two(&app).await;

    for anonymous in [false, true] {
        let poll = create_poll(
            &app,
            &alice,
            &room,
            poll_body(&["a", "b"], json!({"anonymous": anonymous})),
        )
        .await;
        let id = poll_id(&poll);
        let o = option_ids(&poll);
        let statuses: Vec<u16> = join_all((0..50).map(|_| put_vote(&app, &bob, &id, &[&o[0]])))
            .await
            .iter()
            .map(|r| r.status().as_u16())
            .collect();
        let ok = statuses.iter().filter(|s| **s == 200).count();
        if anonymous {
            let conflicts = statuses.iter().filter(|s| **s == 409).count();
            assert_eq!((ok, conflicts), (1, 49), "anonymous: {statuses:?}");
        } else {
            assert_eq!(ok, 50, "a repeated vote is a no-op: {statuses:?}");
        }
        let view = get_poll(&app, &alice, &id).await;
        assert_eq!(view["voter_count"], 1, "anonymous={anonymous}");
        assert_eq!(tallies(&view), counts(&[1, 0]), "anonymous={anonymous}");
        let db = app.db().await;
        let ballots = count(
            &db,
            "SELECT count(*) AS n FROM poll_ballots WHERE poll_id = $1",
            vec![uuid(&id).into()],
        )
        .await;
        assert_eq!(ballots, 1, "anonymous={anonymous}");
        if !anonymous {
            assert_consistent(&app, &alice, &id).await;
        }
    }
}

#[tokio::test]
async fn many_users_voting_and_changing_in_parallel_keep_tallies_equal_to_a_recount() {
    const N: usize = 20;
    let app = spawn_app_unlimited().await;
    let (alice, _bob, voters, room) = room_with(&app, N).await;
    let poll = create_poll(
        &app,
        &alice,
        &room,
        poll_body(&["a", "b", "c", "d"], json!({"multiple_choice": true})),
    )
    .await;
    let id = poll_id(&poll);
    let o = option_ids(&poll);
    let first = |i: usize| vec![&o[i % 4]];
    let second = |i: usize| vec![&o[(i + 1) % 4], &o[(i + 2) % 4]];

    // Each user sends two different votes at once; exactly one of them is what stays.
    let requests = voters.iter().enumerate().flat_map(|(i, v)| {
        [
            put_vote(&app, v, &id, &first(i)),
            put_vote(&app, v, &id, &second(i)),
        ]
    });
    let statuses: Vec<u16> = join_all(requests)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(assert_consistent(&app, &alice, &id).await, N as i64);
    for (i, v) in voters.iter().enumerate() {
        let mine = my_votes(&get_poll(&app, v, &id).await).unwrap();
        assert!(
            mine == set_of(&first(i)) || mine == set_of(&second(i)),
            "{}: {mine:?} mixes two votes",
            v.username
        );
    }

    // Then half retract while the other half change again, all at once.
    let changes = voters.iter().enumerate().map(|(i, v)| {
        let app = &app;
        let id = &id;
        let choice = first(i);
        async move {
            if i % 2 == 0 {
                retract(app, v, id).await.status().as_u16()
            } else {
                put_vote(app, v, id, &choice).await.status().as_u16()
            }
        }
    });
    let statuses: Vec<u16> = join_all(changes).await;
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 204),
        "{statuses:?}"
    );
    assert_eq!(assert_consistent(&app, &alice, &id).await, (N / 2) as i64);
    let view = get_poll(&app, &alice, &id).await;
    // Odd voters chose option i % 4, i.e. b or d, five each.
    assert_eq!(tallies(&view), counts(&[0, 5, 0, 5]));

    // Anonymous: every voter's vote and a duplicate at once; one counts, one is refused.
    let anon = create_poll(
        &app,
        &alice,
        &room,
        poll_body(
            &["a", "b", "c", "d"],
            json!({"multiple_choice": true, "anonymous": true}),
        ),
    )
    .await;
    let aid = poll_id(&anon);
    let a = option_ids(&anon);
    let choice = |i: usize| vec![&a[i % 4], &a[(i + 1) % 4]];
    let requests = voters.iter().enumerate().flat_map(|(i, v)| {
        [
            put_vote(&app, v, &aid, &choice(i)),
            put_vote(&app, v, &aid, &choice(i)),
        ]
    });
    let statuses: Vec<u16> = join_all(requests)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    for (i, pair) in statuses.chunks(2).enumerate() {
        let mut pair = pair.to_vec();
        pair.sort_unstable();
        assert_eq!(pair, [200, 409], "voter {i}: {statuses:?}");
    }
    let view = get_poll(&app, &alice, &aid).await;
    assert_eq!(view["voter_count"], N as i64);
    // Voter i picks options i % 4 and (i + 1) % 4: each option is picked by 10 of 20.
    assert_eq!(tallies(&view), counts(&[10, 10, 10, 10]));
    let db = app.db().await;
    let ballots = count(
        &db,
        "SELECT count(*) AS n FROM poll_ballots WHERE poll_id = $1",
        vec![uuid(&aid).into()],
    )
    .await;
    assert_eq!(ballots, N as i64);
}

// ---------------------------------------------------------------------------------------------
// 7. Closing on schedule
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_poll_closes_itself_at_closes_at_and_subscribers_hear_of_it() {
    let app = spawn_app().await;
    let (alice, bob, room) = room_with_two(&app).await;
    let (mut ws, _) = WsClient::ready(&app, &bob.access_token).await;
    let created_at = Instant::now();
    let poll = create_poll(
        &app,
        &alice,
        &room,
        poll_body(
            &["now", "later"],
            json!({"closes_at": in_seconds(2), "results": "after_close"}),
        ),
    )
    .await;
    let id = poll_id(&poll);
    let o = option_ids(&poll);
    let closes_at: DateTime<Utc> = poll["closes_at"].as_str().unwrap().parse().unwrap();
    let mine = vote_ok(&app, &bob, &id, &[&o[0]]).await;
    assert_eq!(mine["closed"], false);
    assert_eq!(tallies(&mine), hidden(2), "after_close: hidden while open");

    let deadline = created_at + Duration::from_secs(6);
    let closed = loop {
        let frame = next_update(&mut ws, &id, deadline)
            .await
            .expect("a poll.updated with closed=true within 6 s of creating the poll");
        if frame["poll"]["closed"] == true {
            break frame;
        }
        assert_eq!(tallies(&frame["poll"]), hidden(2), "open: {frame}");
    };
    assert_eq!(closed["room_id"], room);
    let event = &closed["poll"];
    let closed_at: DateTime<Utc> = event["closed_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(closed_at, closes_at, "closed at its closes_at");
    assert!(Utc::now() >= closes_at, "not announced before closes_at");
    assert_eq!(event["results_visible"], true, "closed: tallies are public");
    assert_eq!(tallies(event), counts(&[1, 0]));
    assert_eq!(event["voter_count"], 1);
    assert_eq!(
        event["voted"],
        Value::Null,
        "room-wide events name no viewer"
    );
    assert_eq!(event["my_votes"], Value::Null);

    let response = put_vote(&app, &alice, &id, &[&o[1]]).await;
    assert_problem(response, 409, "conflict").await;
    let response = retract(&app, &bob, &id).await;
    assert_problem(response, 409, "conflict").await;
    let view = get_poll(&app, &bob, &id).await;
    assert_eq!(view["closed"], true);
    assert_eq!(tallies(&view), counts(&[1, 0]));
    let db = app.db().await;
    let stored = count(
        &db,
        "SELECT count(*) AS n FROM polls WHERE id = $1 AND closed_at = closes_at",
        vec![uuid(&id).into()],
    )
    .await;
    assert_eq!(stored, 1, "the closing job stored closed_at");
}

// ---------------------------------------------------------------------------------------------
// 8. Who sees tallies
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn tallies_are_shown_by_the_results_rule_and_always_to_creator_and_moderators() {
    let app = spawn_app().await;
    let (alice, bob, others, room) = room_with(&app, 2).await;
    let (carol, dave) = (&others[0], &others[1]);

    // after_vote (the default).
    let poll = create_poll(&app, &alice, &room, poll_body(&["x", "y"], json!({}))).await;
    let id = poll_id(&poll);
    let o = option_ids(&poll);
    let unseen = get_poll(&app, &bob, &id).await;
    assert_eq!(unseen["results_visible"], false);
    assert_eq!(tallies(&unseen), hidden(2));
    assert_eq!(unseen["voter_count"], 0, "voter_count is always shown");
    let carol_view = vote_ok(&app, carol, &id, &[&o[1]]).await;
    assert_eq!(carol_view["results_visible"], true);
    assert_eq!(tallies(&carol_view), counts(&[0, 1]));
    let still = get_poll(&app, &bob, &id).await;
    assert_eq!(
        still["results_visible"], false,
        "carol's vote shows bob nothing"
    );
    assert_eq!(tallies(&still), hidden(2));
    assert_eq!(still["voter_count"], 1);
    let creator = get_poll(&app, &alice, &id).await;
    assert_eq!(creator["voted"], false);
    assert_eq!(creator["results_visible"], true, "the creator always sees");
    assert_eq!(tallies(&creator), counts(&[0, 1]));
    let bob_view = vote_ok(&app, &bob, &id, &[&o[0]]).await;
    assert_eq!(bob_view["results_visible"], true);
    assert_eq!(tallies(&bob_view), counts(&[1, 1]));
    assert_eq!(tallies(&get_poll(&app, &bob, &id).await), counts(&[1, 1]));

    // after_close: hidden from voters until closed; the creator and a manage_messages holder see.
    let late = create_poll(
        &app,
        &alice,
        &room,
        poll_body(&["x", "y"], json!({"results": "after_close"})),
    )
    .await;
    let lid = poll_id(&late);
    let l = option_ids(&late);
    let voted = vote_ok(&app, &bob, &lid, &[&l[0]]).await;
    assert_eq!(voted["voted"], true);
    assert_eq!(voted["results_visible"], false);
    assert_eq!(tallies(&voted), hidden(2));
    assert_eq!(tallies(&get_poll(&app, &bob, &lid).await), hidden(2));
    let creator = get_poll(&app, &alice, &lid).await;
    assert_eq!(creator["results_visible"], true);
    assert_eq!(tallies(&creator), counts(&[1, 0]));
    let subject = format!("user:{}", dave.user_id);
    let response = app
        .request(
            Method::PUT,
            &format!("/v1/rooms/{room}/overrides/{subject}"),
            Some(&alice.access_token),
            Some(json!({"allow": ["manage_messages"], "deny": []})),
        )
        .await;
    body_of(response, StatusCode::NO_CONTENT, "allow manage_messages").await;
    let moderator = get_poll(&app, dave, &lid).await;
    assert_eq!(moderator["voted"], false);
    assert_eq!(moderator["results_visible"], true, "manage_messages sees");
    assert_eq!(tallies(&moderator), counts(&[1, 0]));
    let closed = close(&app, &alice, &lid).await;
    body_of(closed, StatusCode::OK, "close").await;
    let after = get_poll(&app, &bob, &lid).await;
    assert_eq!(after["results_visible"], true, "closed: everyone sees");
    assert_eq!(tallies(&after), counts(&[1, 0]));
    let non_voter = get_poll(&app, carol, &lid).await;
    assert_eq!(non_voter["voted"], false);
    assert_eq!(tallies(&non_voter), counts(&[1, 0]));

    // always: even a non-voter sees.
    let open = create_poll(
        &app,
        &alice,
        &room,
        poll_body(&["x", "y"], json!({"results": "always"})),
    )
    .await;
    let aid = poll_id(&open);
    vote_ok(&app, &bob, &aid, &[&option_ids(&open)[1]]).await;
    let seen = get_poll(&app, carol, &aid).await;
    assert_eq!(seen["results"], "always");
    assert_eq!(seen["results_visible"], true);
    assert_eq!(tallies(&seen), counts(&[0, 1]));
}

// ---------------------------------------------------------------------------------------------
// 9. Closing by hand
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn only_the_creator_or_a_moderator_closes_a_poll_and_closed_polls_take_no_votes() {
    let app = spawn_app().await;
    let (alice, bob, others, room) = room_with(&app, 1).await;
    let carol = &others[0];
    let poll = create_poll(&app, &alice, &room, poll_body(&["x", "y"], json!({}))).await;
    let id = poll_id(&poll);
    let o = option_ids(&poll);
    vote_ok(&app, &bob, &id, &[&o[0]]).await;

    let response = close(&app, &bob, &id).await;
    assert_problem(response, 403, "forbidden").await;
    assert_eq!(get_poll(&app, &bob, &id).await["closed"], false);

    let response = close(&app, &alice, &id).await;
    let closed = body_of(response, StatusCode::OK, "creator closes").await;
    assert_eq!(closed["closed"], true);
    assert!(closed["closed_at"].as_str().is_some(), "{closed}");
    assert_eq!(tallies(&closed), counts(&[1, 0]));
    let again = close(&app, &alice, &id).await;
    let again = body_of(again, StatusCode::OK, "closing twice").await;
    assert_eq!(
        again["closed_at"], closed["closed_at"],
        "closing again changes nothing"
    );

    let response = put_vote(&app, carol, &id, &[&o[1]]).await;
    assert_problem(response, 409, "conflict").await;
    let response = put_vote(&app, &bob, &id, &[&o[1]]).await;
    assert_problem(response, 409, "conflict").await;
    let response = retract(&app, &bob, &id).await;
    assert_problem(response, 409, "conflict").await;
    let view = get_poll(&app, carol, &id).await;
    assert_eq!(tallies(&view), counts(&[1, 0]));
    assert_eq!(view["voter_count"], 1);

    // The owner (manage_messages) may close someone else's poll.
    let bobs = create_poll(&app, &bob, &room, poll_body(&["x", "y"], json!({}))).await;
    let response = close(&app, carol, &poll_id(&bobs)).await;
    assert_problem(response, 403, "forbidden").await;
    let response = close(&app, &alice, &poll_id(&bobs)).await;
    let closed = body_of(response, StatusCode::OK, "owner closes bob's poll").await;
    assert_eq!(closed["closed"], true);
}

// ---------------------------------------------------------------------------------------------
// 10. Access
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn outsiders_get_404_and_members_denied_vote_or_create_polls_get_403() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let eve = app.register("eve").await;
    let community = app
        .post(
            "/v1/communities",
            Some(&alice.access_token),
            json!({"name": "closed", "visibility": "private"}),
        )
        .await;
    let community = body_of(community, StatusCode::CREATED, "community").await;
    let community = community["id"].as_str().unwrap();
    let room = app
        .post(
            &format!("/v1/communities/{community}/rooms"),
            Some(&alice.access_token),
            json!({"name": "inner"}),
        )
        .await;
    let room = body_of(room, StatusCode::CREATED, "room").await;
    let room = room["id"].as_str().unwrap();
    let poll = create_poll(&app, &alice, room, poll_body(&["x", "y"], json!({}))).await;
    let id = poll_id(&poll);
    let o = option_ids(&poll);

    assert_problem(get_poll_response(&app, &eve, &id).await, 404, "not_found").await;
    assert_problem(put_vote(&app, &eve, &id, &[&o[0]]).await, 404, "not_found").await;
    assert_problem(retract(&app, &eve, &id).await, 404, "not_found").await;
    assert_problem(close(&app, &eve, &id).await, 404, "not_found").await;
    assert_problem(voters_page(&app, &eve, &id, "").await, 404, "not_found").await;
    let response = post_poll(&app, &eve, room, poll_body(&["x", "y"], json!({}))).await;
    assert_problem(response, 404, "not_found").await;
    let unknown = Uuid::now_v7().to_string();
    assert_problem(
        get_poll_response(&app, &eve, &unknown).await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(get_poll(&app, &alice, &id).await["voter_count"], 0);

    // A private room of a public community is closed to the community's other members.
    let (carol, dave, general) = room_with_two_named(&app).await;
    let public = community_of(&app, &carol, &general).await;
    let staff = app
        .post(
            &format!("/v1/communities/{public}/rooms"),
            Some(&carol.access_token),
            json!({"name": "staff", "private": true}),
        )
        .await;
    let staff = body_of(staff, StatusCode::CREATED, "private room").await;
    let staff = staff["id"].as_str().unwrap();
    let secret = create_poll(&app, &carol, staff, poll_body(&["x", "y"], json!({}))).await;
    let sid = poll_id(&secret);
    assert_problem(get_poll_response(&app, &dave, &sid).await, 404, "not_found").await;
    let s = option_ids(&secret);
    assert_problem(
        put_vote(&app, &dave, &sid, &[&s[0]]).await,
        404,
        "not_found",
    )
    .await;

    // Visible but not permitted: 403.
    let poll = create_poll(&app, &carol, &general, poll_body(&["x", "y"], json!({}))).await;
    let gid = poll_id(&poll);
    let g = option_ids(&poll);
    deny_in_room(
        &app,
        &carol,
        &general,
        &format!("user:{}", dave.user_id),
        &["vote"],
    )
    .await;
    assert_problem(
        put_vote(&app, &dave, &gid, &[&g[0]]).await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(retract(&app, &dave, &gid).await, 403, "forbidden").await;
    let view = get_poll(&app, &dave, &gid).await;
    assert_eq!(
        view["voter_count"], 0,
        "dave still reads the poll; nothing counted"
    );

    let member = role_id(&app, &carol, &public, "member").await;
    deny_in_room(
        &app,
        &carol,
        &general,
        &format!("role:{member}"),
        &["create_polls"],
    )
    .await;
    let response = post_poll(&app, &dave, &general, poll_body(&["x", "y"], json!({}))).await;
    assert_problem(response, 403, "forbidden").await;
    create_poll(&app, &carol, &general, poll_body(&["x", "y"], json!({}))).await;
    let db = app.db().await;
    let by_dave = count(
        &db,
        "SELECT count(*) AS n FROM polls WHERE creator_id = $1",
        vec![dave.user_id.into()],
    )
    .await;
    assert_eq!(by_dave, 0);
}

/// `room_with_two`'s layout with users carol (owner) and dave (member).
async fn room_with_two_named(app: &TestApp) -> (Session, Session, String) {
    let carol = app.register("carol").await;
    let dave = app.register("dave").await;
    let community = app
        .post(
            "/v1/communities",
            Some(&carol.access_token),
            json!({"name": "open", "visibility": "public"}),
        )
        .await;
    let community = body_of(community, StatusCode::CREATED, "community").await;
    let community = community["id"].as_str().unwrap().to_owned();
    let room = app
        .post(
            &format!("/v1/communities/{community}/rooms"),
            Some(&carol.access_token),
            json!({"name": "general"}),
        )
        .await;
    let room = body_of(room, StatusCode::CREATED, "room").await;
    members_join(app, &community, &dave).await;
    (carol, dave, room["id"].as_str().unwrap().to_owned())
}

async fn members_join(app: &TestApp, community: &str, user: &Session) {
    let response = app
        .post(
            &format!("/v1/communities/{community}/join"),
            Some(&user.access_token),
            json!({}),
        )
        .await;
    assert!(
        response.status().is_success(),
        "join: {}",
        response.status()
    );
}

// ---------------------------------------------------------------------------------------------
// 11. Live events
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn subscribers_get_poll_updated_with_tallies_only_when_public() {
    let app = spawn_app().await;
    let (alice, bob, others, room) = room_with(&app, 2).await;
    let (carol, dave) = (&others[0], &others[1]);
    let (mut ws, _) = WsClient::ready(&app, &bob.access_token).await;
    // Dave is subscribed too, then loses read_history in the room.
    let (mut blind, _) = WsClient::ready(&app, &dave.access_token).await;
    deny_in_room(
        &app,
        &alice,
        &room,
        &format!("user:{}", dave.user_id),
        &["read_history"],
    )
    .await;
    // The contract's bound for a policy change to reach open sessions.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let hidden_poll = create_poll(&app, &alice, &room, poll_body(&["x", "y"], json!({}))).await;
    let hid = poll_id(&hidden_poll);
    vote_ok(&app, carol, &hid, &[&option_ids(&hidden_poll)[0]]).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let frame = next_update(&mut ws, &hid, deadline)
        .await
        .expect("poll.updated after a vote");
    assert_eq!(frame["room_id"], room);
    let event = &frame["poll"];
    assert_eq!(event["voter_count"], 1);
    assert_eq!(event["results_visible"], false);
    assert_eq!(
        tallies(event),
        hidden(2),
        "after_vote: no tallies in room-wide events"
    );
    assert_eq!(event["voted"], Value::Null);
    assert_eq!(event["my_votes"], Value::Null);

    let public = create_poll(
        &app,
        &alice,
        &room,
        poll_body(&["x", "y"], json!({"results": "always"})),
    )
    .await;
    let pid = poll_id(&public);
    vote_ok(&app, carol, &pid, &[&option_ids(&public)[1]]).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let frame = next_update(&mut ws, &pid, deadline)
        .await
        .expect("poll.updated after a vote");
    assert_eq!(frame["poll"]["results_visible"], true);
    assert_eq!(tallies(&frame["poll"]), counts(&[0, 1]));
    assert_eq!(frame["poll"]["my_votes"], Value::Null);

    let quiet = Instant::now() + Duration::from_millis(500);
    for poll in [&hid, &pid] {
        let leaked = next_update(&mut blind, poll, quiet).await;
        assert!(
            leaked.is_none(),
            "dave, denied read_history, got {leaked:?}"
        );
    }
    assert_problem(get_poll_response(&app, dave, &pid).await, 404, "not_found").await;
}

#[tokio::test]
async fn a_vote_storm_is_coalesced_into_a_few_events_ending_with_the_final_count() {
    const VOTERS: usize = 30;
    let app = spawn_app_unlimited().await;
    let (alice, bob, voters, room) = room_with(&app, VOTERS).await;
    let (mut ws, _) = WsClient::ready(&app, &bob.access_token).await;
    let poll = create_poll(
        &app,
        &alice,
        &room,
        poll_body(&["x", "y", "z"], json!({"results": "always"})),
    )
    .await;
    let id = poll_id(&poll);
    let o = option_ids(&poll);

    let started = Instant::now();
    let statuses: Vec<u16> = join_all(
        voters
            .iter()
            .enumerate()
            .map(|(i, v)| put_vote(&app, v, &id, &[&o[i % 3]])),
    )
    .await
    .iter()
    .map(|r| r.status().as_u16())
    .collect();
    let voted = Instant::now();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");

    let mut events = Vec::new();
    let deadline = voted + Duration::from_secs(2);
    while let Some(frame) = next_update(&mut ws, &id, deadline).await {
        let done = frame["poll"]["voter_count"] == VOTERS;
        events.push(frame);
        if done {
            break;
        }
    }
    // Anything still in flight (at most one more window).
    let linger = Instant::now() + Duration::from_millis(750);
    while let Some(frame) = next_update(&mut ws, &id, linger).await {
        events.push(frame);
    }
    let counts_seen: Vec<i64> = events
        .iter()
        .map(|e| e["poll"]["voter_count"].as_i64().unwrap())
        .collect();
    assert!(!events.is_empty(), "no poll.updated at all");
    assert!(
        events.len() <= 10,
        "{} events for {VOTERS} votes in {:?}: {counts_seen:?}",
        events.len(),
        voted - started
    );
    assert_eq!(
        counts_seen.last(),
        Some(&(VOTERS as i64)),
        "the last event has the final count: {counts_seen:?}"
    );
    assert!(
        counts_seen.windows(2).all(|w| w[0] <= w[1]),
        "counts never go back: {counts_seen:?}"
    );
    let last = &events.last().unwrap()["poll"];
    assert_eq!(tallies(last), counts(&[10, 10, 10]));
}

// ---------------------------------------------------------------------------------------------
// 12. The carrying message
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_carrying_message_is_in_the_timeline_cannot_be_edited_and_deleting_it_deletes_the_poll()
{
    let app = spawn_app().await;
    let (alice, bob, room) = room_with_two(&app).await;
    let (mut ws, _) = WsClient::ready(&app, &bob.access_token).await;
    let poll = create_poll(&app, &alice, &room, poll_body(&["x", "y"], json!({}))).await;
    let id = poll_id(&poll);
    let o = option_ids(&poll);
    let message_id = poll["message_id"].as_str().unwrap().to_owned();
    let created = ws.expect("message.created").await;
    assert_eq!(created["room_id"], room);
    assert_eq!(created["message"]["id"], message_id);
    assert_eq!(created["message"]["poll_id"], id, "{created}");
    vote_ok(&app, &bob, &id, &[&o[0]]).await;

    let history = app
        .get(
            &format!("/v1/rooms/{room}/messages"),
            Some(&bob.access_token),
        )
        .await;
    let history = body_of(history, StatusCode::OK, "history").await;
    let messages = history["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{history}");
    let carrier = &messages[0];
    assert_eq!(carrier["id"], message_id);
    assert_eq!(carrier["poll_id"], id);
    assert_eq!(carrier["sender_id"], alice.user_id.to_string());
    assert_eq!(carrier["content"], "Where do we meet?");
    assert_eq!(carrier["seq"], 1);

    let path = format!("/v1/rooms/{room}/messages/{message_id}");
    let edit = app
        .request(
            Method::PATCH,
            &path,
            Some(&alice.access_token),
            Some(json!({"content": "Something else?"})),
        )
        .await;
    assert_problem(edit, 409, "conflict").await;
    assert_eq!(
        get_poll(&app, &alice, &id).await["question"],
        "Where do we meet?"
    );

    let delete = app
        .request(Method::DELETE, &path, Some(&alice.access_token), None)
        .await;
    assert_eq!(delete.status(), StatusCode::NO_CONTENT);
    let deleted = ws.expect("message.deleted").await;
    assert_eq!(deleted["message"]["id"], message_id);
    assert_eq!(deleted["message"]["poll_id"], Value::Null, "{deleted}");
    assert_problem(get_poll_response(&app, &alice, &id).await, 404, "not_found").await;
    assert_problem(get_poll_response(&app, &bob, &id).await, 404, "not_found").await;
    assert_problem(put_vote(&app, &bob, &id, &[&o[1]]).await, 404, "not_found").await;
    let history = app
        .get(
            &format!("/v1/rooms/{room}/messages"),
            Some(&bob.access_token),
        )
        .await;
    let history = body_of(history, StatusCode::OK, "history").await;
    let tombstone = &history["messages"][0];
    assert_eq!(tombstone["id"], message_id);
    assert_eq!(tombstone["deleted"], true);
    assert_eq!(tombstone["poll_id"], Value::Null);
    let db = app.db().await;
    let left = count(
        &db,
        "SELECT (SELECT count(*) FROM polls WHERE id = $1) \
              + (SELECT count(*) FROM poll_votes WHERE poll_id = $1) \
              + (SELECT count(*) FROM poll_ballots WHERE poll_id = $1) \
              + (SELECT count(*) FROM poll_options WHERE poll_id = $1) AS n",
        vec![uuid(&id).into()],
    )
    .await;
    assert_eq!(left, 0, "the poll went with its votes");
}

// ---------------------------------------------------------------------------------------------
// 13. Voters
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn voters_are_listed_in_pages_for_open_polls_and_refused_for_anonymous_ones() {
    let app = spawn_app().await;
    let (alice, bob, others, room) = room_with(&app, 2).await;
    let (carol, dave) = (&others[0], &others[1]);
    let poll = create_poll(
        &app,
        &alice,
        &room,
        poll_body(&["x", "y", "z"], json!({"multiple_choice": true})),
    )
    .await;
    let id = poll_id(&poll);
    let o = option_ids(&poll);
    vote_ok(&app, &bob, &id, &[&o[0], &o[1]]).await;
    vote_ok(&app, carol, &id, &[&o[1]]).await;
    vote_ok(&app, dave, &id, &[&o[2]]).await;
    let expected: BTreeSet<(String, String)> =
        [(&bob, &o[0]), (&bob, &o[1]), (carol, &o[1]), (dave, &o[2])]
            .into_iter()
            .map(|(u, opt)| (u.user_id.to_string(), opt.clone()))
            .collect();

    // One per page, walking the cursor.
    let mut seen = Vec::new();
    let mut query = "limit=1".to_owned();
    for _ in 0..10 {
        let page = voters_page(&app, &alice, &id, &query).await;
        let page = body_of(page, StatusCode::OK, &query).await;
        let voters = page["voters"].as_array().unwrap();
        assert!(voters.len() <= 1, "{page}");
        for v in voters {
            assert!(v["voted_at"].as_str().is_some(), "{v}");
            seen.push((
                v["user_id"].as_str().unwrap().to_owned(),
                v["option_id"].as_str().unwrap().to_owned(),
            ));
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("limit=1&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 4, "no repeats, nothing missing: {seen:?}");
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), expected);

    let all = voters_page(&app, &bob, &id, "").await;
    let all = body_of(all, StatusCode::OK, "all voters").await;
    assert_eq!(all["voters"].as_array().unwrap().len(), 4);
    assert_eq!(all["next_cursor"], Value::Null);
    let pairs: Vec<(String, String)> = all["voters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["user_id"].as_str().unwrap().to_owned(),
                v["option_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(pairs, seen, "pages walk the same order as one page");

    let only_y = voters_page(&app, &alice, &id, &format!("option_id={}", o[1])).await;
    let only_y = body_of(only_y, StatusCode::OK, "option filter").await;
    let users: HashSet<String> = only_y["voters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            assert_eq!(v["option_id"], o[1]);
            v["user_id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        users,
        HashSet::from([bob.user_id.to_string(), carol.user_id.to_string()])
    );
    let foreign = Uuid::now_v7();
    let response = voters_page(&app, &alice, &id, &format!("option_id={foreign}")).await;
    let problem = assert_problem(response, 422, "validation_failed").await;
    assert_eq!(problem_fields(&problem), ["option_id"]);
    let response = voters_page(&app, &alice, &id, "cursor=not-a-cursor").await;
    assert_problem(response, 422, "validation_failed").await;

    // A member who has not voted in an after_vote poll may not see who voted yet.
    let fresh = create_poll(&app, &alice, &room, poll_body(&["x", "y"], json!({}))).await;
    vote_ok(&app, carol, &poll_id(&fresh), &[&option_ids(&fresh)[0]]).await;
    let response = voters_page(&app, dave, &poll_id(&fresh), "").await;
    assert_problem(response, 403, "forbidden").await;

    let anon = create_poll(
        &app,
        &alice,
        &room,
        poll_body(&["x", "y"], json!({"anonymous": true, "results": "always"})),
    )
    .await;
    vote_ok(&app, &bob, &poll_id(&anon), &[&option_ids(&anon)[0]]).await;
    for who in [&alice, &bob] {
        let response = voters_page(&app, who, &poll_id(&anon), "limit=1").await;
        assert_problem(response, 409, "conflict").await;
    }
}

// ---------------------------------------------------------------------------------------------
// 14. Validation
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn invalid_polls_are_refused_with_the_fields_named() {
    let app = spawn_app().await;
    let (alice, _bob, room) = room_with_two(&app).await;
    let many: Vec<String> = (1..=21).map(|i| format!("option {i}")).collect();
    let twenty: Vec<String> = many[..20].to_vec();
    let cases = [
        (
            "one option",
            json!({"question": "q", "options": ["only"]}),
            "options",
        ),
        (
            "21 options",
            json!({"question": "q", "options": many}),
            "options",
        ),
        (
            "duplicate labels",
            json!({"question": "q", "options": ["same", "other", " same "]}),
            "options",
        ),
        (
            "empty label",
            json!({"question": "q", "options": ["a", "  "]}),
            "options",
        ),
        (
            "label over 100",
            json!({"question": "q", "options": ["a", "b".repeat(101)]}),
            "options",
        ),
        (
            "empty question",
            json!({"question": "  ", "options": ["a", "b"]}),
            "question",
        ),
        (
            "question over 300",
            json!({"question": "q".repeat(301), "options": ["a", "b"]}),
            "question",
        ),
        (
            "closes_at in the past",
            json!({"question": "q", "options": ["a", "b"], "closes_at": in_seconds(-60)}),
            "closes_at",
        ),
        (
            "closes_at beyond 366 days",
            json!({"question": "q", "options": ["a", "b"], "closes_at": in_seconds(367 * 86_400)}),
            "closes_at",
        ),
        (
            "max_choices on single choice",
            json!({"question": "q", "options": ["a", "b"], "max_choices": 1}),
            "max_choices",
        ),
        (
            "max_choices above the options",
            json!({"question": "q", "options": ["a", "b"], "multiple_choice": true, "max_choices": 3}),
            "max_choices",
        ),
        (
            "max_choices zero",
            json!({"question": "q", "options": ["a", "b"], "multiple_choice": true, "max_choices": 0}),
            "max_choices",
        ),
    ];
    for (what, body, field) in cases {
        let response = post_poll(&app, &alice, &room, body).await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert!(
            problem_fields(&problem).iter().any(|f| f == field),
            "{what}: {field} in {problem}"
        );
    }
    // Malformed bodies: 400 or 422, validation_failed.
    for body in [
        json!({"options": ["a", "b"]}),
        json!({"question": "q", "options": ["a", "b"], "results": "never"}),
        json!({"question": "q", "options": "a, b"}),
    ] {
        let response = post_poll(&app, &alice, &room, body.clone()).await;
        let status = response.status().as_u16();
        assert!(status == 400 || status == 422, "{body}: {status}");
        assert_problem(response, status, "validation_failed").await;
    }

    let db = app.db().await;
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM polls", vec![]).await,
        0
    );
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM messages", vec![]).await,
        0,
        "no carrying message for a refused poll"
    );

    // The bounds themselves are fine.
    let poll = create_poll(
        &app,
        &alice,
        &room,
        json!({"question": "q", "options": twenty, "closes_at": in_seconds(2)}),
    )
    .await;
    assert_eq!(poll["options"].as_array().unwrap().len(), 20);
}

// ---------------------------------------------------------------------------------------------
// Deleting what holds a poll
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn deleting_a_room_or_community_takes_its_polls_votes_and_ballots_along() {
    let app = spawn_app().await;
    let (alice, bob, room) = room_with_two(&app).await;
    let community = community_of(&app, &alice, &room).await;
    let db = app.db().await;
    let leftovers = "SELECT (SELECT count(*) FROM polls) + (SELECT count(*) FROM poll_options) \
                     + (SELECT count(*) FROM poll_ballots) + (SELECT count(*) FROM poll_votes) AS n";
    let mut polls = Vec::new();
    for anonymous in [false, true] {
        let poll = create_poll(
            &app,
            &alice,
            &room,
            poll_body(&["x", "y"], json!({"anonymous": anonymous})),
        )
        .await;
        vote_ok(&app, &bob, &poll_id(&poll), &[&option_ids(&poll)[0]]).await;
        polls.push(poll_id(&poll));
    }
    let response = app
        .request(
            Method::DELETE,
            &format!("/v1/rooms/{room}"),
            Some(&alice.access_token),
            None,
        )
        .await;
    assert!(
        response.status().is_success(),
        "delete room: {}",
        response.status()
    );
    for id in &polls {
        assert_problem(get_poll_response(&app, &alice, id).await, 404, "not_found").await;
    }
    assert_eq!(count(&db, leftovers, vec![]).await, 0);

    let other = app
        .post(
            &format!("/v1/communities/{community}/rooms"),
            Some(&alice.access_token),
            json!({"name": "second"}),
        )
        .await;
    let other = body_of(other, StatusCode::CREATED, "room").await;
    let other = other["id"].as_str().unwrap();
    let poll = create_poll(&app, &alice, other, poll_body(&["x", "y"], json!({}))).await;
    vote_ok(&app, &bob, &poll_id(&poll), &[&option_ids(&poll)[1]]).await;
    let response = app
        .request(
            Method::DELETE,
            &format!("/v1/communities/{community}"),
            Some(&alice.access_token),
            None,
        )
        .await;
    assert!(
        response.status().is_success(),
        "delete community: {}",
        response.status()
    );
    assert_eq!(count(&db, leftovers, vec![]).await, 0);
}

/// A poll posts a message: someone muted in the room (send_messages denied) cannot post one,
/// and nothing is left behind.
#[tokio::test]
async fn a_member_muted_in_the_room_cannot_post_a_poll() {
    let app = spawn_app().await;
    let (carol, dave, room) = room_with_two_named(&app).await;
    let subject = format!("user:{}", dave.user_id);
    deny_in_room(&app, &carol, &room, &subject, &["send_messages"]).await;
    let response = post_poll(&app, &dave, &room, poll_body(&["x", "y"], json!({}))).await;
    let problem = assert_problem(response, 403, "forbidden").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("send_messages"),
        "{problem}"
    );
    let db = app.db().await;
    let stored = count(&db, "SELECT count(*) AS n FROM polls", vec![]).await;
    assert_eq!(stored, 0);
}
