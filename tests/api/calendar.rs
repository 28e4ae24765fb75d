//! Recurring events end to end: expansion across DST, validation, per-occurrence edits,
//! whole-series edits, this-and-following splits, RSVPs, permissions, the iCalendar feed with
//! feed tokens, reminders across two nodes, and live `event.updated` frames.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use reqwest::{Method, Response, StatusCode};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};
use tokio::time::Instant;
use uuid::Uuid;

use crate::helpers::{
    Session, TestApp, assert_problem, problem_fields, redis_url, spawn_app, spawn_app_with, start,
};
use crate::realtime::{body_of, role_id, room_with_two};
use crate::ws::WsClient;

// ---------------------------------------------------------------------------------------------
// Arranging helpers
// ---------------------------------------------------------------------------------------------

fn t(raw: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(raw)
        .unwrap_or_else(|e| panic!("{raw}: {e}"))
        .with_timezone(&Utc)
}

/// RFC 3339 UTC with `Z`, the form `{original_start}` takes in a path.
fn z(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A time field of a JSON object.
fn at(value: &Value, field: &str) -> DateTime<Utc> {
    t(value[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {value}")))
}

fn id_of(value: &Value) -> String {
    value["id"].as_str().unwrap().to_owned()
}

async fn community(app: &TestApp, owner: &Session, visibility: &str) -> String {
    let response = app
        .post(
            "/v1/communities",
            Some(&owner.access_token),
            json!({"name": "calendar", "visibility": visibility}),
        )
        .await;
    id_of(&body_of(response, StatusCode::CREATED, "create community").await)
}

async fn join(app: &TestApp, user: &Session, community: &str) {
    let response = app
        .post(
            &format!("/v1/communities/{community}/join"),
            Some(&user.access_token),
            json!({}),
        )
        .await;
    body_of(response, StatusCode::OK, "join").await;
}

/// An invite code of a (private) community that any number of users may accept.
async fn admit(app: &TestApp, owner: &Session, community: &str, users: &[&Session]) {
    let invite = app
        .post(
            &format!("/v1/communities/{community}/invites"),
            Some(&owner.access_token),
            json!({}),
        )
        .await;
    let invite = body_of(invite, StatusCode::CREATED, "invite").await;
    for user in users {
        let accepted = app
            .post(
                &format!("/v1/invites/{}/accept", invite["code"].as_str().unwrap()),
                Some(&user.access_token),
                json!({}),
            )
            .await;
        body_of(accepted, StatusCode::OK, "accept invite").await;
    }
}

/// A public community owned by `alice` with `bob` and `carol` joined.
async fn three_in_public(app: &TestApp) -> (Session, Session, Session, String) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let c = community(app, &alice, "public").await;
    join(app, &bob, &c).await;
    join(app, &carol, &c).await;
    (alice, bob, carol, c)
}

async fn try_create(app: &TestApp, user: &Session, community: &str, body: Value) -> Response {
    app.post(
        &format!("/v1/communities/{community}/events"),
        Some(&user.access_token),
        body,
    )
    .await
}

async fn create(app: &TestApp, user: &Session, community: &str, body: Value) -> Value {
    let response = try_create(app, user, community, body).await;
    body_of(response, StatusCode::CREATED, "create event").await
}

/// A weekly UTC series of `count` one-hour occurrences starting at `start`.
fn weekly(title: &str, start: &str, count: u32) -> Value {
    let starts = t(start);
    json!({
        "title": title,
        "starts_at": start,
        "ends_at": z(starts + TimeDelta::hours(1)),
        "timezone": "UTC",
        "rrule": format!("FREQ=WEEKLY;COUNT={count}"),
    })
}

async fn try_occurrences(
    app: &TestApp,
    user: &Session,
    community: &str,
    from: &str,
    to: &str,
) -> Response {
    app.get(
        &format!("/v1/communities/{community}/occurrences?from={from}&to={to}"),
        Some(&user.access_token),
    )
    .await
}

async fn occurrences(
    app: &TestApp,
    user: &Session,
    community: &str,
    from: &str,
    to: &str,
) -> Vec<Value> {
    let response = try_occurrences(app, user, community, from, to).await;
    let page = body_of(response, StatusCode::OK, "occurrences").await;
    page["occurrences"].as_array().unwrap().clone()
}

/// The occurrences of one series in the listing.
fn of_event<'a>(list: &'a [Value], event: &str) -> Vec<&'a Value> {
    list.iter().filter(|o| o["event_id"] == event).collect()
}

fn starts(list: &[&Value]) -> Vec<DateTime<Utc>> {
    list.iter().map(|o| at(o, "starts_at")).collect()
}

fn originals(list: &[&Value]) -> Vec<DateTime<Utc>> {
    list.iter().map(|o| at(o, "original_start")).collect()
}

fn occurrence_path(event: &str, original: DateTime<Utc>) -> String {
    format!("/v1/events/{event}/occurrences/{}", z(original))
}

async fn get_event(app: &TestApp, user: &Session, event: &str) -> Value {
    let response = app
        .get(&format!("/v1/events/{event}"), Some(&user.access_token))
        .await;
    body_of(response, StatusCode::OK, "get event").await
}

async fn patch(app: &TestApp, user: &Session, path: &str, body: Value) -> Response {
    app.request(Method::PATCH, path, Some(&user.access_token), Some(body))
        .await
}

async fn delete(app: &TestApp, user: &Session, path: &str) -> Response {
    app.request(Method::DELETE, path, Some(&user.access_token), None)
        .await
}

async fn try_rsvp(
    app: &TestApp,
    user: &Session,
    event: &str,
    original: DateTime<Utc>,
    status: &str,
) -> Response {
    app.request(
        Method::PUT,
        &format!("{}/rsvp", occurrence_path(event, original)),
        Some(&user.access_token),
        Some(json!({"status": status})),
    )
    .await
}

async fn rsvp(
    app: &TestApp,
    user: &Session,
    event: &str,
    original: DateTime<Utc>,
    status: &str,
) -> Value {
    let response = try_rsvp(app, user, event, original, status).await;
    body_of(response, StatusCode::OK, "rsvp").await
}

fn counts(going: i64, maybe: i64, declined: i64) -> Value {
    json!({"going": going, "maybe": maybe, "declined": declined})
}

async fn set_override(
    app: &TestApp,
    owner: &Session,
    scope: &str,
    subject: &str,
    allow: &[&str],
    deny: &[&str],
) {
    let response = app
        .request(
            Method::PUT,
            &format!("{scope}/overrides/{subject}"),
            Some(&owner.access_token),
            Some(json!({"allow": allow, "deny": deny})),
        )
        .await;
    body_of(response, StatusCode::NO_CONTENT, "set override").await;
}

// ---------------------------------------------------------------------------------------------
// Expansion and validation
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn weekly_berlin_series_keeps_its_local_time_across_dst() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let c = community(&app, &alice, "public").await;

    // 18:00 CET given with its offset: stored and returned in UTC.
    let event = create(
        &app,
        &alice,
        &c,
        json!({
            "title": "Choir",
            "starts_at": "2027-03-18T18:00:00+01:00",
            "ends_at": "2027-03-18T19:30:00+01:00",
            "timezone": "Europe/Berlin",
            "rrule": "FREQ=WEEKLY;COUNT=6",
        }),
    )
    .await;
    assert_eq!(event["starts_at"], "2027-03-18T17:00:00Z", "{event}");
    assert_eq!(event["ends_at"], "2027-03-18T18:30:00Z", "{event}");
    assert_eq!(event["timezone"], "Europe/Berlin");

    let list = occurrences(
        &app,
        &alice,
        &c,
        "2027-03-01T00:00:00Z",
        "2027-05-01T00:00:00Z",
    )
    .await;
    let expected: Vec<_> = [
        "2027-03-18T17:00:00Z",
        "2027-03-25T17:00:00Z",
        // Summer time from 2027-03-28: still 18:00 in Berlin.
        "2027-04-01T16:00:00Z",
        "2027-04-08T16:00:00Z",
        "2027-04-15T16:00:00Z",
        "2027-04-22T16:00:00Z",
    ]
    .into_iter()
    .map(t)
    .collect();
    let all: Vec<&Value> = list.iter().collect();
    assert_eq!(starts(&all), expected, "{list:#?}");
    assert_eq!(originals(&all), expected, "original_start == starts_at");
    for o in &list {
        assert_eq!(o["event_id"], event["id"]);
        assert_eq!(o["title"], "Choir");
        assert_eq!(o["cancelled"], false);
        assert_eq!(
            at(o, "ends_at") - at(o, "starts_at"),
            TimeDelta::minutes(90),
            "{o}"
        );
        assert!(o["starts_at"].as_str().unwrap().ends_with('Z'), "{o}");
    }
}

#[tokio::test]
async fn invalid_series_and_windows_are_422_naming_the_field() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let c = community(&app, &alice, "public").await;
    let good = weekly("Standup", "2027-01-04T09:00:00Z", 4);

    let cases = [
        ("rrule", json!({"rrule": "FREQ=SOMETIMES"})),
        ("timezone", json!({"timezone": "Mars/Olympus_Mons"})),
        ("ends_at", json!({"ends_at": "2027-01-04T08:00:00Z"})),
    ];
    for (field, change) in cases {
        let mut body = good.clone();
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let response = try_create(&app, &alice, &c, body).await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert!(
            problem_fields(&problem).contains(&field.to_owned()),
            "{field}: {problem}"
        );
    }

    // Nothing of the refused series was stored.
    let list = occurrences(
        &app,
        &alice,
        &c,
        "2027-01-01T00:00:00Z",
        "2027-02-01T00:00:00Z",
    )
    .await;
    assert!(list.is_empty(), "{list:#?}");

    // 366 days are accepted, 367 are not.
    let ok = try_occurrences(
        &app,
        &alice,
        &c,
        "2027-01-01T00:00:00Z",
        "2028-01-02T00:00:00Z",
    )
    .await;
    body_of(ok, StatusCode::OK, "366-day window").await;
    let too_wide = try_occurrences(
        &app,
        &alice,
        &c,
        "2027-01-01T00:00:00Z",
        "2028-01-03T00:00:00Z",
    )
    .await;
    assert_problem(too_wide, 422, "validation_failed").await;

    // Ten daily occurrences: limit 5 is a 422, never a silent cut; limit 10 lists all.
    create(
        &app,
        &alice,
        &c,
        json!({
            "title": "Daily",
            "starts_at": "2027-01-01T07:00:00Z",
            "ends_at": "2027-01-01T07:15:00Z",
            "timezone": "UTC",
            "rrule": "FREQ=DAILY;COUNT=10",
        }),
    )
    .await;
    let window = "from=2027-01-01T00:00:00Z&to=2027-02-01T00:00:00Z";
    let cut = app
        .get(
            &format!("/v1/communities/{c}/occurrences?{window}&limit=5"),
            Some(&alice.access_token),
        )
        .await;
    assert_problem(cut, 422, "validation_failed").await;
    let all = app
        .get(
            &format!("/v1/communities/{c}/occurrences?{window}&limit=10"),
            Some(&alice.access_token),
        )
        .await;
    let all = body_of(all, StatusCode::OK, "limit 10").await;
    assert_eq!(all["occurrences"].as_array().unwrap().len(), 10, "{all}");
}

// ---------------------------------------------------------------------------------------------
// Edits: one occurrence, the whole series, this and following
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn one_occurrence_can_be_moved_or_cancelled() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let c = community(&app, &alice, "public").await;
    let event = create(
        &app,
        &alice,
        &c,
        weekly("Standup", "2027-01-04T09:00:00Z", 4),
    )
    .await;
    let e = id_of(&event);
    let week = TimeDelta::weeks(1);
    let o: Vec<DateTime<Utc>> = (0..4)
        .map(|i| t("2027-01-04T09:00:00Z") + week * i)
        .collect();

    let moved = patch(
        &app,
        &alice,
        &occurrence_path(&e, o[1]),
        json!({"title": "Moved standup", "starts_at": z(o[1] + TimeDelta::hours(1))}),
    )
    .await;
    body_of(moved, StatusCode::OK, "edit occurrence").await;
    let cancelled = delete(&app, &alice, &occurrence_path(&e, o[2])).await;
    body_of(cancelled, StatusCode::OK, "cancel occurrence").await;

    let list = occurrences(
        &app,
        &alice,
        &c,
        "2027-01-01T00:00:00Z",
        "2027-02-01T00:00:00Z",
    )
    .await;
    let mine = of_event(&list, &e);
    assert_eq!(
        originals(&mine),
        o,
        "every occurrence listed once: {list:#?}"
    );
    for (i, occ) in mine.iter().enumerate() {
        let (title, start, cancelled) = match i {
            1 => ("Moved standup", o[1] + TimeDelta::hours(1), false),
            2 => ("Standup", o[2], true),
            _ => ("Standup", o[i], false),
        };
        assert_eq!(occ["title"], title, "{occ}");
        assert_eq!(at(occ, "starts_at"), start, "{occ}");
        assert_eq!(at(occ, "ends_at"), start + TimeDelta::hours(1), "{occ}");
        assert_eq!(occ["cancelled"], cancelled, "{occ}");
    }

    // A start the rule never produces is no occurrence.
    let nowhere = o[0] + TimeDelta::days(1);
    let response = patch(
        &app,
        &alice,
        &occurrence_path(&e, nowhere),
        json!({"title": "Ghost"}),
    )
    .await;
    assert_problem(response, 404, "not_found").await;
    let response = delete(&app, &alice, &occurrence_path(&e, nowhere)).await;
    assert_problem(response, 404, "not_found").await;
    let response = try_rsvp(&app, &alice, &e, nowhere, "going").await;
    assert_problem(response, 404, "not_found").await;
}

#[tokio::test]
async fn whole_series_edit_moves_every_occurrence_with_its_edits_and_rsvps() {
    let app = spawn_app().await;
    let (alice, bob, _carol, c) = three_in_public(&app).await;
    let start = t("2027-01-04T09:00:00Z");
    let week = TimeDelta::weeks(1);
    let half = TimeDelta::minutes(30);
    let event = create(&app, &alice, &c, weekly("Standup", &z(start), 4)).await;
    let e = id_of(&event);
    let o: Vec<DateTime<Utc>> = (0..4).map(|i| start + week * i).collect();

    let edited = patch(
        &app,
        &alice,
        &occurrence_path(&e, o[1]),
        json!({"title": "Special"}),
    )
    .await;
    body_of(edited, StatusCode::OK, "edit occurrence").await;
    rsvp(&app, &bob, &e, o[2], "going").await;

    let updated = patch(
        &app,
        &alice,
        &format!("/v1/events/{e}"),
        json!({"title": "Renamed", "starts_at": z(start + half)}),
    )
    .await;
    let updated = body_of(updated, StatusCode::OK, "edit series").await;
    assert_eq!(at(&updated, "starts_at"), start + half);
    assert_eq!(at(&updated, "ends_at"), start + half + TimeDelta::hours(1));
    assert!(
        updated["sequence"].as_i64().unwrap() > event["sequence"].as_i64().unwrap(),
        "sequence moves: {event} -> {updated}"
    );
    let overrides = updated["overrides"].as_array().unwrap();
    assert_eq!(overrides.len(), 1, "{updated}");
    assert_eq!(
        at(&overrides[0], "original_start"),
        o[1] + half,
        "{updated}"
    );

    let list = occurrences(
        &app,
        &bob,
        &c,
        "2027-01-01T00:00:00Z",
        "2027-02-01T00:00:00Z",
    )
    .await;
    let mine = of_event(&list, &e);
    let moved: Vec<_> = o.iter().map(|s| *s + half).collect();
    assert_eq!(starts(&mine), moved, "{list:#?}");
    assert_eq!(originals(&mine), moved, "{list:#?}");
    for (i, occ) in mine.iter().enumerate() {
        let title = if i == 1 { "Special" } else { "Renamed" };
        assert_eq!(
            occ["title"], title,
            "the edit stays on its occurrence: {occ}"
        );
        if i == 2 {
            assert_eq!(occ["rsvp"], counts(1, 0, 0), "the RSVP stays: {occ}");
            assert_eq!(occ["my_rsvp"], "going", "{occ}");
        } else {
            assert_eq!(occ["rsvp"], counts(0, 0, 0), "{occ}");
            assert_eq!(occ["my_rsvp"], Value::Null, "{occ}");
        }
    }
    let attendees = app
        .get(
            &format!("{}/rsvps", occurrence_path(&e, o[2] + half)),
            Some(&bob.access_token),
        )
        .await;
    let attendees = body_of(attendees, StatusCode::OK, "rsvps").await;
    assert_eq!(attendees["counts"], counts(1, 0, 0), "{attendees}");
    assert_eq!(
        attendees["attendees"][0]["user_id"],
        bob.user_id.to_string()
    );
    // The old key is no occurrence any more.
    let old = app
        .get(
            &format!("{}/rsvps", occurrence_path(&e, o[2])),
            Some(&bob.access_token),
        )
        .await;
    assert_problem(old, 404, "not_found").await;
}

/// Moving a series by exactly its period: every key moves onto the key of the next occurrence,
/// which must not collide with the rows not yet moved.
#[tokio::test]
async fn moving_a_series_by_a_whole_week_keeps_the_edits_and_rsvps_of_consecutive_weeks() {
    let app = spawn_app().await;
    let (alice, bob, _carol, c) = three_in_public(&app).await;
    let start = t("2027-01-04T09:00:00Z");
    let week = TimeDelta::weeks(1);
    let event = create(&app, &alice, &c, weekly("Standup", &z(start), 4)).await;
    let e = id_of(&event);
    let o: Vec<DateTime<Utc>> = (0..4).map(|i| start + week * i).collect();
    for (i, original) in o.iter().enumerate() {
        let response = patch(
            &app,
            &alice,
            &occurrence_path(&e, *original),
            json!({"location": format!("room {i}")}),
        )
        .await;
        body_of(response, StatusCode::OK, "edit occurrence").await;
        rsvp(&app, &bob, &e, *original, "going").await;
    }

    let updated = patch(
        &app,
        &alice,
        &format!("/v1/events/{e}"),
        json!({"starts_at": z(start + week)}),
    )
    .await;
    body_of(updated, StatusCode::OK, "move the series by one week").await;

    let list = occurrences(
        &app,
        &bob,
        &c,
        "2027-01-01T00:00:00Z",
        "2027-03-01T00:00:00Z",
    )
    .await;
    let mine = of_event(&list, &e);
    let moved: Vec<_> = o.iter().map(|s| *s + week).collect();
    assert_eq!(originals(&mine), moved, "{list:#?}");
    for (i, occ) in mine.iter().enumerate() {
        assert_eq!(occ["location"], format!("room {i}"), "{occ}");
        assert_eq!(occ["rsvp"], counts(1, 0, 0), "{occ}");
        assert_eq!(occ["my_rsvp"], "going", "{occ}");
    }
}

#[tokio::test]
async fn split_this_and_following_shares_the_count_and_takes_the_later_edits_along() {
    let app = spawn_app().await;
    let (alice, bob, _carol, c) = three_in_public(&app).await;
    let start = t("2027-01-04T09:00:00Z");
    let week = TimeDelta::weeks(1);
    let event = create(&app, &alice, &c, weekly("Standup", &z(start), 6)).await;
    let old = id_of(&event);
    let o: Vec<DateTime<Utc>> = (0..6).map(|i| start + week * i).collect();

    let edited = patch(
        &app,
        &alice,
        &occurrence_path(&old, o[4]),
        json!({"location": "Annex"}),
    )
    .await;
    body_of(edited, StatusCode::OK, "edit 5th occurrence").await;
    rsvp(&app, &bob, &old, o[4], "going").await;

    let split = app
        .post(
            &format!("/v1/events/{old}/split"),
            Some(&alice.access_token),
            json!({"from": z(o[3]), "changes": {"title": "Retro"}}),
        )
        .await;
    let new = body_of(split, StatusCode::OK, "split").await;
    let new_id = id_of(&new);
    assert_ne!(new_id, old);
    assert_eq!(new["split_from"], old.as_str(), "{new}");
    assert_eq!(new["title"], "Retro");
    assert_eq!(at(&new, "starts_at"), o[3], "{new}");

    let old_view = get_event(&app, &alice, &old).await;
    let rule = old_view["rrule"].as_str().unwrap();
    assert!(rule.contains("UNTIL="), "{old_view}");
    assert!(
        !rule.contains("COUNT="),
        "COUNT and UNTIL never together: {old_view}"
    );
    assert!(
        old_view["overrides"].as_array().unwrap().is_empty(),
        "the edit of the 5th moved away: {old_view}"
    );
    let new_view = get_event(&app, &alice, &new_id).await;
    let overrides = new_view["overrides"].as_array().unwrap();
    assert_eq!(overrides.len(), 1, "{new_view}");
    assert_eq!(at(&overrides[0], "original_start"), o[4], "{new_view}");

    let list = occurrences(
        &app,
        &bob,
        &c,
        "2027-01-01T00:00:00Z",
        "2027-06-01T00:00:00Z",
    )
    .await;
    let before = of_event(&list, &old);
    assert_eq!(originals(&before), o[..3].to_vec(), "{list:#?}");
    assert!(before.iter().all(|occ| occ["title"] == "Standup"));
    let after = of_event(&list, &new_id);
    assert_eq!(
        originals(&after),
        o[3..].to_vec(),
        "the rest of COUNT=6: {list:#?}"
    );
    assert!(after.iter().all(|occ| occ["title"] == "Retro"), "{list:#?}");
    assert_eq!(list.len(), 6, "nothing doubled: {list:#?}");
    assert_eq!(after[1]["location"], "Annex", "{:#}", after[1]);
    assert_eq!(after[1]["rsvp"], counts(1, 0, 0), "{:#}", after[1]);
    assert_eq!(after[1]["my_rsvp"], "going", "{:#}", after[1]);
    assert_eq!(after[0]["location"], "", "{:#}", after[0]);

    // The RSVP answers on the new series, and no longer on the old one.
    let attendees = app
        .get(
            &format!("{}/rsvps", occurrence_path(&new_id, o[4])),
            Some(&bob.access_token),
        )
        .await;
    let attendees = body_of(attendees, StatusCode::OK, "rsvps").await;
    assert_eq!(attendees["counts"], counts(1, 0, 0), "{attendees}");
    let gone = app
        .get(
            &format!("{}/rsvps", occurrence_path(&old, o[4])),
            Some(&bob.access_token),
        )
        .await;
    assert_problem(gone, 404, "not_found").await;
}

// ---------------------------------------------------------------------------------------------
// RSVPs
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn rsvp_counts_are_exact_and_a_cancelled_occurrence_takes_none() {
    let app = spawn_app().await;
    let (alice, bob, carol, c) = three_in_public(&app).await;
    let start = t("2027-01-04T09:00:00Z");
    let second = start + TimeDelta::weeks(1);
    let event = create(&app, &alice, &c, weekly("Standup", &z(start), 3)).await;
    let e = id_of(&event);

    let answer = rsvp(&app, &bob, &e, start, "going").await;
    assert_eq!(answer["status"], "going");
    assert_eq!(answer["counts"], counts(1, 0, 0), "{answer}");
    // The same answer again changes nothing.
    let answer = rsvp(&app, &bob, &e, start, "going").await;
    assert_eq!(answer["counts"], counts(1, 0, 0), "{answer}");
    let answer = rsvp(&app, &carol, &e, start, "maybe").await;
    assert_eq!(answer["counts"], counts(1, 1, 0), "{answer}");
    let answer = rsvp(&app, &carol, &e, start, "declined").await;
    assert_eq!(answer["status"], "declined");
    assert_eq!(answer["counts"], counts(1, 0, 1), "{answer}");

    let rsvps_path = format!("{}/rsvps", occurrence_path(&e, start));
    let list = app.get(&rsvps_path, Some(&alice.access_token)).await;
    let list = body_of(list, StatusCode::OK, "rsvps").await;
    assert_eq!(list["counts"], counts(1, 0, 1), "{list}");
    let mut attendees: Vec<(String, String)> = list["attendees"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["user_id"].as_str().unwrap().to_owned(),
                a["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    attendees.sort();
    let mut expected = vec![
        (bob.user_id.to_string(), "going".to_owned()),
        (carol.user_id.to_string(), "declined".to_owned()),
    ];
    expected.sort();
    assert_eq!(attendees, expected);

    let window = ("2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z");
    for (user, mine) in [
        (&bob, json!("going")),
        (&carol, json!("declined")),
        (&alice, Value::Null),
    ] {
        let list = occurrences(&app, user, &c, window.0, window.1).await;
        let list = of_event(&list, &e);
        assert_eq!(list.len(), 3);
        assert_eq!(list[0]["rsvp"], counts(1, 0, 1), "{}", list[0]);
        assert_eq!(list[0]["my_rsvp"], mine, "{}: {}", user.username, list[0]);
        assert_eq!(list[1]["rsvp"], counts(0, 0, 0), "{}", list[1]);
        assert_eq!(list[1]["my_rsvp"], Value::Null, "{}", list[1]);
    }

    // Withdrawing.
    let withdrawn = delete(&app, &bob, &format!("{}/rsvp", occurrence_path(&e, start))).await;
    let withdrawn = body_of(withdrawn, StatusCode::OK, "withdraw").await;
    assert_eq!(withdrawn["status"], Value::Null, "{withdrawn}");
    assert_eq!(withdrawn["counts"], counts(0, 0, 1), "{withdrawn}");
    let list = app.get(&rsvps_path, Some(&alice.access_token)).await;
    let list = body_of(list, StatusCode::OK, "rsvps").await;
    assert_eq!(list["counts"], counts(0, 0, 1), "{list}");
    assert_eq!(list["attendees"].as_array().unwrap().len(), 1, "{list}");
    let listed = occurrences(&app, &bob, &c, window.0, window.1).await;
    assert_eq!(listed[0]["my_rsvp"], Value::Null, "{}", listed[0]);
    assert_eq!(listed[0]["rsvp"], counts(0, 0, 1), "{}", listed[0]);

    // A cancelled occurrence takes no RSVP.
    let cancelled = delete(&app, &alice, &occurrence_path(&e, second)).await;
    body_of(cancelled, StatusCode::OK, "cancel").await;
    let refused = try_rsvp(&app, &bob, &e, second, "going").await;
    assert_problem(refused, 409, "conflict").await;
    let list = occurrences(&app, &bob, &c, window.0, window.1).await;
    assert_eq!(list[1]["cancelled"], true, "{}", list[1]);
    assert_eq!(list[1]["rsvp"], counts(0, 0, 0), "{}", list[1]);
}

// ---------------------------------------------------------------------------------------------
// Permissions
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn events_are_hidden_from_outsiders_and_changed_only_by_their_creator_or_managers() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let dave = app.register("dave").await;
    let c = community(&app, &alice, "private").await;
    admit(&app, &alice, &c, &[&bob, &carol]).await;
    let start = t("2027-01-04T09:00:00Z");
    let event = create(&app, &alice, &c, weekly("Board", &z(start), 3)).await;
    let e = id_of(&event);
    let window = ("2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z");

    // Outsiders see nothing: 404, not 403.
    let response = try_occurrences(&app, &dave, &c, window.0, window.1).await;
    assert_problem(response, 404, "not_found").await;
    let response = app
        .get(&format!("/v1/events/{e}"), Some(&dave.access_token))
        .await;
    assert_problem(response, 404, "not_found").await;
    let response = try_rsvp(&app, &dave, &e, start, "going").await;
    assert_problem(response, 404, "not_found").await;
    let response = app
        .get(
            &format!("/v1/communities/{c}/calendar.ics"),
            Some(&dave.access_token),
        )
        .await;
    assert_problem(response, 404, "not_found").await;
    let response = patch(
        &app,
        &dave,
        &format!("/v1/events/{e}"),
        json!({"title": "x"}),
    )
    .await;
    assert_problem(response, 404, "not_found").await;

    // Members may create events; bob's own deny at the community takes it from him.
    let member = role_id(&app, &alice, &c, "member").await;
    let scope = format!("/v1/communities/{c}");
    set_override(
        &app,
        &alice,
        &scope,
        &format!("role:{member}"),
        &["create_events"],
        &[],
    )
    .await;
    set_override(
        &app,
        &alice,
        &scope,
        &format!("user:{}", bob.user_id),
        &[],
        &["create_events"],
    )
    .await;
    let refused = try_create(&app, &bob, &c, weekly("Bob's", &z(start), 2)).await;
    assert_problem(refused, 403, "forbidden").await;
    let carols = create(&app, &carol, &c, weekly("Carol's", &z(start), 2)).await;
    let carols = id_of(&carols);

    // Plain members change only their own events.
    let events = format!("/v1/events/{e}");
    let response = patch(&app, &carol, &events, json!({"title": "Mine now"})).await;
    assert_problem(response, 403, "forbidden").await;
    let response = delete(&app, &carol, &events).await;
    assert_problem(response, 403, "forbidden").await;
    let response = patch(
        &app,
        &carol,
        &occurrence_path(&e, start),
        json!({"title": "x"}),
    )
    .await;
    assert_problem(response, 403, "forbidden").await;
    let response = delete(&app, &bob, &format!("/v1/events/{carols}")).await;
    assert_problem(response, 403, "forbidden").await;
    let response = patch(
        &app,
        &carol,
        &format!("/v1/events/{carols}"),
        json!({"title": "Carol's!"}),
    )
    .await;
    body_of(response, StatusCode::OK, "the creator edits her event").await;
    // They still see and answer.
    rsvp(&app, &bob, &e, start, "going").await;

    // An event of a private room bob is not in is not his to see.
    let room = app
        .post(
            &format!("/v1/communities/{c}/rooms"),
            Some(&alice.access_token),
            json!({"name": "secret", "private": true}),
        )
        .await;
    let room = id_of(&body_of(room, StatusCode::CREATED, "create private room").await);
    let mut secret = weekly("Secret", &z(start), 3);
    secret["room_id"] = json!(room);
    let secret = id_of(&create(&app, &alice, &c, secret).await);

    let list = occurrences(&app, &bob, &c, window.0, window.1).await;
    assert!(of_event(&list, &secret).is_empty(), "{list:#?}");
    assert_eq!(of_event(&list, &e).len(), 3, "{list:#?}");
    assert_eq!(of_event(&list, &carols).len(), 2, "{list:#?}");
    let response = app
        .get(&format!("/v1/events/{secret}"), Some(&bob.access_token))
        .await;
    assert_problem(response, 404, "not_found").await;
    let response = try_rsvp(&app, &bob, &secret, start, "going").await;
    assert_problem(response, 404, "not_found").await;
    let list = occurrences(&app, &alice, &c, window.0, window.1).await;
    assert_eq!(
        of_event(&list, &secret).len(),
        3,
        "the owner sees it: {list:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// iCalendar feed
// ---------------------------------------------------------------------------------------------

/// Runs `scripts/ics_check.py` on an iCalendar text and returns its JSON.
fn ics_check(ics: &str) -> Value {
    let file = std::env::temp_dir().join(format!("gh-feed-{}.ics", Uuid::new_v4().simple()));
    std::fs::write(&file, ics).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/ics_check.py");
    let output = std::process::Command::new("python3")
        .arg(script)
        .arg(&file)
        .output()
        .expect("python3 runs");
    let _ = std::fs::remove_file(&file);
    assert!(
        output.status.success(),
        "ics_check.py failed: {}\n{}\n--- feed ---\n{ics}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout),
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "ics_check.py output is not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

#[tokio::test]
async fn ics_feed_works_with_bearer_and_revocable_feed_tokens() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let c = community(&app, &alice, "public").await;
    let event = create(
        &app,
        &alice,
        &c,
        json!({
            "title": "Choir",
            "starts_at": "2027-03-18T17:00:00Z",
            "ends_at": "2027-03-18T18:30:00Z",
            "timezone": "Europe/Berlin",
            "rrule": "FREQ=WEEKLY;COUNT=6",
        }),
    )
    .await;
    let e = id_of(&event);
    let moved = t("2027-03-25T17:00:00Z");
    let cancelled = t("2027-04-01T16:00:00Z");
    let response = patch(
        &app,
        &alice,
        &occurrence_path(&e, moved),
        json!({"title": "Choir (moved)", "starts_at": "2027-03-25T18:00:00Z"}),
    )
    .await;
    body_of(response, StatusCode::OK, "edit occurrence").await;
    let response = delete(&app, &alice, &occurrence_path(&e, cancelled)).await;
    body_of(response, StatusCode::OK, "cancel occurrence").await;

    let feed = format!("/v1/communities/{c}/calendar.ics");
    let with_bearer = app.get(&feed, Some(&alice.access_token)).await;
    assert_eq!(with_bearer.status(), StatusCode::OK);
    let content_type = with_bearer.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/calendar"), "{content_type}");
    let bearer_body = with_bearer.text().await.unwrap();
    assert!(bearer_body.starts_with("BEGIN:VCALENDAR"), "{bearer_body}");

    let token = app
        .post(
            "/v1/calendar/feed-tokens",
            Some(&alice.access_token),
            json!({}),
        )
        .await;
    let token = body_of(token, StatusCode::CREATED, "create feed token").await;
    let token_id = id_of(&token);
    let value = token["token"]
        .as_str()
        .expect("the value is shown once")
        .to_owned();
    assert!(!value.is_empty());
    let listed = app
        .get("/v1/calendar/feed-tokens", Some(&alice.access_token))
        .await;
    let listed = body_of(listed, StatusCode::OK, "list feed tokens").await;
    assert_eq!(listed["tokens"][0]["id"], token_id.as_str(), "{listed}");
    assert_eq!(
        listed["tokens"][0]["token"],
        Value::Null,
        "never shown again: {listed}"
    );

    let with_token = format!("{feed}?token={value}");
    let response = app.get(&with_token, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/calendar")
    );
    let ics = response.text().await.unwrap();

    let parsed = ics_check(&ics);
    let events = parsed["events"].as_array().expect("events").clone();
    let uid = format!("{e}@guildhall");
    let ours: Vec<&Value> = events.iter().filter(|v| v["uid"] == uid.as_str()).collect();
    let masters: Vec<&&Value> = ours
        .iter()
        .filter(|v| v["recurrence_id"].is_null())
        .collect();
    assert_eq!(masters.len(), 1, "one master VEVENT: {parsed:#}\n{ics}");
    let master = masters[0];
    let rule = master["rrule"].as_str().unwrap_or_default();
    assert!(rule.contains("FREQ=WEEKLY"), "{master:#}\n{ics}");
    assert!(rule.contains("COUNT=6"), "{master:#}\n{ics}");
    assert_eq!(
        master["tzid"], "Europe/Berlin",
        "TZID-based DTSTART: {master:#}\n{ics}"
    );
    assert_eq!(master["dtstart"], "2027-03-18T17:00:00Z", "{master:#}");
    assert_eq!(master["summary"], "Choir", "{master:#}");
    assert_eq!(
        master["exdates"],
        json!(["2027-04-01T16:00:00Z"]),
        "the cancelled occurrence is an EXDATE: {master:#}\n{ics}"
    );
    let edits: Vec<&&Value> = ours
        .iter()
        .filter(|v| !v["recurrence_id"].is_null())
        .collect();
    assert_eq!(edits.len(), 1, "one override VEVENT: {parsed:#}\n{ics}");
    let edit = edits[0];
    assert_eq!(
        edit["recurrence_id"], "2027-03-25T17:00:00Z",
        "the original start: {edit:#}"
    );
    assert_eq!(edit["summary"], "Choir (moved)", "{edit:#}");
    assert_eq!(edit["dtstart"], "2027-03-25T18:00:00Z", "{edit:#}");

    // Revoked: the same URL is 401 at once.
    let revoked = delete(
        &app,
        &alice,
        &format!("/v1/calendar/feed-tokens/{token_id}"),
    )
    .await;
    body_of(revoked, StatusCode::NO_CONTENT, "revoke").await;
    let response = app.get(&with_token, None).await;
    assert_problem(response, 401, "unauthorized").await;
    let response = app
        .get(&format!("{feed}?token=ghcal_not-a-token"), None)
        .await;
    assert_problem(response, 401, "unauthorized").await;
    let response = app.get(&feed, None).await;
    assert_problem(response, 401, "unauthorized").await;
    // The bearer header still works.
    let response = app.get(&feed, Some(&alice.access_token)).await;
    assert_eq!(response.status(), StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------
// Realtime: reminders and event.updated
// ---------------------------------------------------------------------------------------------

/// How often every node scans for due reminders (`src/calendar/reminders.rs`).
const SCAN: Duration = Duration::from_secs(5);
/// The reminder lead time the nodes run with.
const LEAD_S: i64 = 3;

/// Every `event.starting` frame for `event` until `deadline`.
async fn starting_frames(client: &mut WsClient, event: &str, deadline: Instant) -> Vec<Value> {
    let mut got = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return got;
        }
        match client.next(left).await {
            Some(frame) if frame["type"] == "event.starting" && frame["event_id"] == event => {
                got.push(frame);
            }
            Some(_) => {}
            None => return got,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reminders_go_out_exactly_once_across_two_nodes() {
    let node_a = spawn_app_with(|s| {
        s.insert("redis_url".into(), redis_url());
        s.insert("event_reminder_s".into(), LEAD_S.to_string());
    })
    .await;
    // Each node's scanner starts while the node is built and ticks every SCAN from then on.
    let a_scans = Instant::now();
    let node_b = start(node_a.database.clone(), node_a.settings.clone()).await;
    let b_scans = Instant::now();
    let (alice, bob, carol, c) = three_in_public(&node_a).await;
    let mut bob_a = crate::realtime::ready(&node_a, &bob).await;
    let mut bob_b = crate::realtime::ready(&node_b, &bob).await;
    let mut carol_b = crate::realtime::ready(&node_b, &carol).await;

    // A lead shorter than the scan period is only seen by scans inside [start - lead, start):
    // put the start so that one scan of each node falls in that window (both nodes race to
    // claim the reminder), at least ~5 s from now.
    let phase = a_scans + (b_scans - a_scans) / 2;
    let mut scan = phase;
    while scan < Instant::now() + Duration::from_secs(3) {
        scan += SCAN;
    }
    let starts = scan + Duration::from_millis(1500);
    let starts_utc = Utc::now() + TimeDelta::from_std(starts - Instant::now()).unwrap();
    let starts_utc =
        DateTime::from_timestamp((starts_utc.timestamp_millis() + 500).div_euclid(1000), 0)
            .unwrap();
    eprintln!(
        "node B scans {:?} after node A; event at {starts_utc}",
        b_scans - a_scans
    );
    let event = create(
        &node_a,
        &alice,
        &c,
        json!({
            "title": "Kick-off",
            "starts_at": z(starts_utc),
            "ends_at": z(starts_utc + TimeDelta::hours(1)),
            "timezone": "UTC",
        }),
    )
    .await;
    let e = id_of(&event);
    rsvp(&node_b, &bob, &e, starts_utc, "going").await;
    rsvp(&node_a, &carol, &e, starts_utc, "maybe").await;

    // Listen until past the start (no scan reminds of a started occurrence) plus one more scan.
    let deadline = starts + Duration::from_millis(1500);
    assert!(deadline < Instant::now() + Duration::from_secs(12));
    let (a, b, maybe) = tokio::join!(
        starting_frames(&mut bob_a, &e, deadline),
        starting_frames(&mut bob_b, &e, deadline),
        starting_frames(&mut carol_b, &e, deadline),
    );
    for (node, frames) in [("A", &a), ("B", &b)] {
        assert_eq!(frames.len(), 1, "bob's session on node {node}: {frames:#?}");
        let frame = &frames[0];
        assert_eq!(frame["title"], "Kick-off");
        assert_eq!(frame["community_id"], c.as_str());
        assert_eq!(at(frame, "original_start"), starts_utc, "{frame}");
        assert_eq!(at(frame, "starts_at"), starts_utc, "{frame}");
        let starts_in = frame["starts_in_s"].as_i64().unwrap();
        assert!((0..=LEAD_S).contains(&starts_in), "{frame}");
    }
    assert!(maybe.is_empty(), "maybe gets no reminder: {maybe:#?}");

    let db = node_a.db().await;
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT count(*)::bigint AS n FROM event_reminders_sent WHERE event_id = $1",
            [e.parse::<Uuid>().unwrap().into()],
        ))
        .await
        .unwrap()
        .unwrap();
    let sent: i64 = row.try_get("", "n").unwrap();
    assert_eq!(sent, 1, "one reminder row for the occurrence");
}

#[tokio::test]
async fn room_subscribers_get_event_updated_when_a_room_event_is_created_and_edited() {
    let app = spawn_app().await;
    let (alice, bob, room) = room_with_two(&app).await;
    let c = crate::realtime::community_of(&app, &alice, &room).await;
    let mut watcher = crate::realtime::ready(&app, &bob).await;

    let mut body = weekly("Room meetup", "2027-01-04T09:00:00Z", 3);
    body["room_id"] = json!(room);
    let event = create(&app, &alice, &c, body).await;
    let e = id_of(&event);
    let created = watcher.expect("event.updated").await;
    assert_eq!(created["event"]["id"], e.as_str(), "{created}");
    assert_eq!(created["event"]["room_id"], room.as_str(), "{created}");
    assert_eq!(created["event"]["title"], "Room meetup");
    assert_eq!(created["community_id"], c.as_str(), "{created}");
    assert_eq!(created["deleted"], false, "{created}");

    let edited = patch(
        &app,
        &alice,
        &format!("/v1/events/{e}"),
        json!({"title": "Room meetup v2"}),
    )
    .await;
    body_of(edited, StatusCode::OK, "edit").await;
    let updated = watcher.expect("event.updated").await;
    assert_eq!(updated["event"]["id"], e.as_str(), "{updated}");
    assert_eq!(updated["event"]["title"], "Room meetup v2", "{updated}");
    assert_eq!(updated["deleted"], false, "{updated}");

    let gone = delete(&app, &alice, &format!("/v1/events/{e}")).await;
    body_of(gone, StatusCode::NO_CONTENT, "delete").await;
    let deleted = watcher.expect("event.updated").await;
    assert_eq!(deleted["event"]["id"], e.as_str(), "{deleted}");
    assert_eq!(deleted["deleted"], true, "{deleted}");
}
