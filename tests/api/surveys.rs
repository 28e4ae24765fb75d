//! Surveys end to end: create, respond and edit, close (by hand and on schedule), aggregated
//! results and who sees them, CSV export, permissions, live `survey.updated` events.

use std::time::Duration;

use chrono::Utc;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::helpers::{Session, TestApp, assert_problem, problem_fields, spawn_app};
use crate::realtime::{body_of, community_of, deny_in_room, history_all, ready, room_with_two};

async fn create_survey(app: &TestApp, user: &Session, room: &str, body: Value) -> Response {
    app.post(
        &format!("/v1/rooms/{room}/surveys"),
        Some(&user.access_token),
        body,
    )
    .await
}

/// Creates a survey, asserting 201; returns its view.
async fn survey(app: &TestApp, user: &Session, room: &str, body: Value) -> Value {
    let response = create_survey(app, user, room, body).await;
    body_of(response, StatusCode::CREATED, "create survey").await
}

async fn respond(app: &TestApp, user: &Session, survey: &Value, answers: Value) -> Response {
    app.post(
        &format!("/v1/surveys/{}/responses", id(survey)),
        Some(&user.access_token),
        json!({ "answers": answers }),
    )
    .await
}

/// Responds, asserting `status`; returns the response body.
async fn respond_ok(
    app: &TestApp,
    user: &Session,
    survey: &Value,
    answers: Value,
    status: StatusCode,
) -> Value {
    let response = respond(app, user, survey, answers).await;
    body_of(response, status, &format!("{} responds", user.username)).await
}

async fn close(app: &TestApp, user: &Session, survey: &Value) -> Response {
    app.post(
        &format!("/v1/surveys/{}/close", id(survey)),
        Some(&user.access_token),
        json!({}),
    )
    .await
}

async fn get(app: &TestApp, user: &Session, path: &str) -> Response {
    app.get(path, Some(&user.access_token)).await
}

async fn get_survey(app: &TestApp, user: &Session, survey: &Value) -> Value {
    let response = get(app, user, &format!("/v1/surveys/{}", id(survey))).await;
    body_of(response, StatusCode::OK, "get survey").await
}

fn id(value: &Value) -> &str {
    value["id"].as_str().unwrap()
}

/// The id of question `q`.
fn question(survey: &Value, q: usize) -> &str {
    survey["questions"][q]["id"].as_str().unwrap()
}

/// The id of option `o` of question `q`.
fn option(survey: &Value, q: usize, o: usize) -> &str {
    survey["questions"][q]["options"][o]["id"].as_str().unwrap()
}

/// A third user, member of the room's (public) community.
async fn member(app: &TestApp, owner: &Session, room: &str, username: &str) -> Session {
    let user = app.register(username).await;
    let community = community_of(app, owner, room).await;
    let joined = app
        .post(
            &format!("/v1/communities/{community}/join"),
            Some(&user.access_token),
            json!({}),
        )
        .await;
    assert!(joined.status().is_success(), "join: {}", joined.status());
    user
}

/// Asserts a 422 naming `field`.
async fn assert_invalid(response: Response, field: &str) {
    let body = assert_problem(response, 422, "validation_failed").await;
    let fields = problem_fields(&body);
    assert!(fields.iter().any(|f| f == field), "{field} in {body}");
}

fn choice(question: &str, options: &[&str]) -> Value {
    json!({"question_id": question, "option_ids": options})
}

// ---------------------------------------------------------------------------------------------
// Create and read
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_created_survey_shows_its_questions_and_is_carried_into_the_timeline() {
    let app = spawn_app().await;
    let (alice, bob, room) = room_with_two(&app).await;

    let created = survey(
        &app,
        &alice,
        &room,
        json!({
            "title": "  Team offsite  ",
            "description": "Help us plan",
            "questions": [
                {"kind": "single", "prompt": "Where?", "options": ["Lake", "Hills"]},
                {"kind": "multiple", "prompt": "Food?", "options": ["Pizza", "Curry", "Salad"],
                 "max_choices": 2, "required": false},
                {"kind": "text", "prompt": "Anything else?", "required": false},
                {"kind": "rating", "prompt": "Last year?"},
                {"kind": "rating", "prompt": "This year, hopes?", "scale": 10},
            ],
            "results": "always",
        }),
    )
    .await;

    assert_eq!(created["title"], "Team offsite");
    assert_eq!(created["description"], "Help us plan");
    assert_eq!(created["room_id"], room.as_str());
    assert_eq!(created["creator_id"], alice.user_id.to_string());
    assert_eq!(created["results"], "always");
    assert_eq!(created["closed"], false);
    assert_eq!(created["response_count"], 0);
    assert_eq!(created["responded"], false);
    let questions = created["questions"].as_array().unwrap();
    let shape = |q: &Value| {
        (
            q["kind"].as_str().unwrap().to_owned(),
            q["required"].as_bool().unwrap(),
            q["scale"].as_i64(),
            q["max_choices"].as_i64(),
            q["options"].as_array().unwrap().len(),
        )
    };
    let shapes: Vec<_> = questions.iter().map(shape).collect();
    assert_eq!(
        shapes,
        [
            ("single".to_owned(), true, None, None, 2),
            ("multiple".to_owned(), false, None, Some(2), 3),
            ("text".to_owned(), false, None, None, 0),
            ("rating".to_owned(), true, Some(5), None, 0),
            ("rating".to_owned(), true, Some(10), None, 0),
        ]
    );
    assert_eq!(questions[1]["options"][1]["label"], "Curry");

    // The member sees the same survey, and the message carrying it in the room history.
    let seen = get_survey(&app, &bob, &created).await;
    assert_eq!(seen["questions"], created["questions"]);
    assert_eq!(seen["results_visible"], true);
    let history = history_all(&app, &bob, &room).await;
    let carrier = history
        .iter()
        .find(|m| m["survey_id"] == created["id"])
        .expect("the carrying message is in the history");
    assert_eq!(carrier["content"], "Team offsite");
    assert_eq!(carrier["id"], created["message_id"]);
}

#[tokio::test]
async fn a_retried_client_msg_id_returns_the_first_survey() {
    let app = spawn_app().await;
    let (alice, _bob, room) = room_with_two(&app).await;
    let body = json!({
        "title": "Once",
        "questions": [{"kind": "text", "prompt": "Why?"}],
        "client_msg_id": "survey-1",
    });
    let first = survey(&app, &alice, &room, body.clone()).await;
    let again = survey(&app, &alice, &room, body).await;
    assert_eq!(again["id"], first["id"]);
    let history = history_all(&app, &alice, &room).await;
    assert_eq!(history.len(), 1, "one carrying message");
}

#[tokio::test]
async fn invalid_surveys_are_refused_naming_the_fields() {
    let app = spawn_app().await;
    let (alice, _bob, room) = room_with_two(&app).await;
    let text = json!({"kind": "text", "prompt": "Why?"});
    let cases = [
        (
            json!({"title": "t", "questions": [{"kind": "essay", "prompt": "p"}]}),
            "questions[0].kind",
        ),
        (
            json!({"title": "t", "questions": [text, {"kind": "rating", "prompt": "p", "scale": 7}]}),
            "questions[1].scale",
        ),
        (
            json!({"title": "t", "questions": [text, text, {"kind": "single", "prompt": "p", "options": ["only"]}]}),
            "questions[2].options",
        ),
        (
            json!({"title": "t", "questions": [{"kind": "single", "prompt": "p", "options": ["a", "a"]}]}),
            "questions[0].options",
        ),
        (
            json!({"title": "t", "questions": [{"kind": "text", "prompt": "p", "options": ["a", "b"]}]}),
            "questions[0].options",
        ),
        (
            json!({"title": "t", "questions": [{"kind": "multiple", "prompt": "p", "options": ["a", "b"], "max_choices": 3}]}),
            "questions[0].max_choices",
        ),
        (
            json!({"title": "t", "questions": [{"kind": "text", "prompt": "  "}]}),
            "questions[0].prompt",
        ),
        (json!({"title": "t", "questions": []}), "questions"),
        (json!({"title": " ", "questions": [text]}), "title"),
        (
            json!({"title": "t", "questions": [text], "closes_at": "2000-01-01T00:00:00Z"}),
            "closes_at",
        ),
        (
            json!({"title": "t", "questions": [text], "results": "never"}),
            "results",
        ),
    ];
    for (body, field) in cases {
        assert_invalid(create_survey(&app, &alice, &room, body).await, field).await;
    }
    assert!(history_all(&app, &alice, &room).await.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Responding
// ---------------------------------------------------------------------------------------------

fn two_question_survey() -> Value {
    json!({
        "title": "Lunch",
        "questions": [
            {"kind": "single", "prompt": "Where?", "options": ["Deli", "Noodles", "Tacos"]},
            {"kind": "text", "prompt": "Why?", "required": false},
        ],
    })
}

#[tokio::test]
async fn a_response_can_be_replaced_until_close() {
    let app = spawn_app().await;
    let (alice, bob, room) = room_with_two(&app).await;
    let s = survey(&app, &alice, &room, two_question_survey()).await;
    let (where_, why) = (question(&s, 0), question(&s, 1));

    let first = respond_ok(
        &app,
        &bob,
        &s,
        json!([choice(where_, &[option(&s, 0, 0)]), {"question_id": why, "text": "  fast  "}]),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(first["survey_id"], s["id"]);
    assert_eq!(first["answers"][1]["text"], "fast");

    let second = respond_ok(
        &app,
        &bob,
        &s,
        json!([choice(where_, &[option(&s, 0, 2)])]),
        StatusCode::OK,
    )
    .await;
    assert_eq!(second["submitted_at"], first["submitted_at"]);
    let at = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    assert!(at(&second["updated_at"]) >= at(&first["updated_at"]));

    // The earlier answers are gone, not merged.
    let mine = get(&app, &bob, &format!("/v1/surveys/{}/responses/me", id(&s))).await;
    let mine = body_of(mine, StatusCode::OK, "my response").await;
    assert_eq!(
        mine["answers"],
        json!([{"question_id": where_, "option_ids": [option(&s, 0, 2)], "text": null, "rating": null}])
    );
    let seen = get_survey(&app, &bob, &s).await;
    assert_eq!(seen["response_count"], 1);
    assert_eq!(seen["responded"], true);
    assert_eq!(get_survey(&app, &alice, &s).await["responded"], false);
    let none = get(
        &app,
        &alice,
        &format!("/v1/surveys/{}/responses/me", id(&s)),
    )
    .await;
    assert_problem(none, 404, "not_found").await;
}

#[tokio::test]
async fn answers_that_break_the_rules_are_refused_and_nothing_is_stored() {
    let app = spawn_app().await;
    let (alice, bob, room) = room_with_two(&app).await;
    let s = survey(
        &app,
        &alice,
        &room,
        json!({
            "title": "Rules",
            "questions": [
                {"kind": "single", "prompt": "One", "options": ["a", "b"]},
                {"kind": "multiple", "prompt": "Some", "options": ["x", "y", "z"], "max_choices": 2, "required": false},
                {"kind": "rating", "prompt": "Rate", "required": false},
                {"kind": "text", "prompt": "Say", "required": false},
            ],
        }),
    )
    .await;
    let (one, some, rate, say) = (
        question(&s, 0),
        question(&s, 1),
        question(&s, 2),
        question(&s, 3),
    );
    let a = option(&s, 0, 0);
    let cases = [
        // The required first question is missing.
        (json!([{"question_id": rate, "rating": 3}]), "answers"),
        // An option of another question.
        (
            json!([choice(one, &[option(&s, 1, 0)])]),
            "answers[0].option_ids",
        ),
        (
            json!([choice(one, &[a, option(&s, 0, 1)])]),
            "answers[0].option_ids",
        ),
        (json!([choice(one, &[])]), "answers[0].option_ids"),
        (
            json!([
                choice(one, &[a]),
                choice(
                    some,
                    &[option(&s, 1, 0), option(&s, 1, 1), option(&s, 1, 2)]
                )
            ]),
            "answers[1].option_ids",
        ),
        (
            json!([
                choice(one, &[a]),
                choice(some, &[option(&s, 1, 0), option(&s, 1, 0)])
            ]),
            "answers[1].option_ids",
        ),
        (
            json!([choice(one, &[a]), {"question_id": rate, "rating": 6}]),
            "answers[1].rating",
        ),
        (
            json!([choice(one, &[a]), {"question_id": rate, "rating": 0}]),
            "answers[1].rating",
        ),
        (
            json!([choice(one, &[a]), {"question_id": say, "text": "   "}]),
            "answers[1].text",
        ),
        (
            json!([choice(one, &[a]), {"question_id": say, "text": "x".repeat(4001)}]),
            "answers[1].text",
        ),
        (
            json!([{"question_id": one, "text": "a"}]),
            "answers[0].text",
        ),
        (
            json!([choice(one, &[a]), choice(one, &[a])]),
            "answers[1].question_id",
        ),
        (
            json!([choice(one, &[a]), {"question_id": uuid::Uuid::now_v7(), "text": "?"}]),
            "answers[1].question_id",
        ),
        (json!([]), "answers"),
    ];
    for (answers, field) in cases {
        assert_invalid(respond(&app, &bob, &s, answers).await, field).await;
    }
    let mine = get(&app, &bob, &format!("/v1/surveys/{}/responses/me", id(&s))).await;
    assert_problem(mine, 404, "not_found").await;
    assert_eq!(get_survey(&app, &bob, &s).await["response_count"], 0);
}

#[tokio::test]
async fn a_closed_survey_refuses_responses_and_closes_itself_on_time() {
    let app = spawn_app().await;
    let (alice, bob, room) = room_with_two(&app).await;

    // Closed by hand: only its creator may, and closing twice changes nothing.
    let s = survey(&app, &alice, &room, two_question_survey()).await;
    assert_problem(close(&app, &bob, &s).await, 403, "forbidden").await;
    let closed = body_of(close(&app, &alice, &s).await, StatusCode::OK, "close").await;
    assert_eq!(closed["closed"], true);
    let again = body_of(close(&app, &alice, &s).await, StatusCode::OK, "close again").await;
    assert_eq!(again["closed_at"], closed["closed_at"]);
    let answers = json!([choice(question(&s, 0), &[option(&s, 0, 0)])]);
    let late = respond(&app, &bob, &s, answers).await;
    assert_problem(late, 409, "conflict").await;

    // Closed by the clock: the closing job announces it.
    let mut watcher = ready(&app, &bob).await;
    let closes_at = Utc::now() + chrono::Duration::seconds(2);
    let mut body = two_question_survey();
    body["closes_at"] = json!(closes_at);
    let timed = survey(&app, &alice, &room, body).await;
    let answers = json!([choice(question(&timed, 0), &[option(&timed, 0, 1)])]);
    respond_ok(&app, &bob, &timed, answers.clone(), StatusCode::CREATED).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if get_survey(&app, &bob, &timed).await["closed"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "the survey closed within 5 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    loop {
        let event = watcher.expect("survey.updated").await;
        if event["survey"]["id"] == timed["id"] && event["survey"]["closed"] == true {
            assert!(event["survey"]["closed_at"].is_string(), "{event}");
            break;
        }
    }
    let late = respond(&app, &bob, &timed, answers).await;
    assert_problem(late, 409, "conflict").await;
}

// ---------------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn results_count_every_answer_and_show_text_authors_only_to_the_creator() {
    let app = spawn_app().await;
    let (alice, bob, room) = room_with_two(&app).await;
    let carol = member(&app, &alice, &room, "carol").await;
    let s = survey(
        &app,
        &alice,
        &room,
        json!({
            "title": "Retro",
            "results": "always",
            "questions": [
                {"kind": "single", "prompt": "Colour", "options": ["red", "green", "blue"]},
                {"kind": "multiple", "prompt": "Snacks", "options": ["chips", "nuts", "fruit"], "max_choices": 2},
                {"kind": "rating", "prompt": "Mood"},
                {"kind": "text", "prompt": "Notes", "required": false},
            ],
        }),
    )
    .await;
    let q: Vec<&str> = (0..4).map(|i| question(&s, i)).collect();
    let o = |qi, oi| option(&s, qi, oi);
    let answers = [
        (
            &alice,
            json!([choice(q[0], &[o(0, 0)]), choice(q[1], &[o(1, 0), o(1, 1)]),
            {"question_id": q[2], "rating": 4}, {"question_id": q[3], "text": "great"}]),
        ),
        (
            &bob,
            json!([choice(q[0], &[o(0, 0)]), choice(q[1], &[o(1, 1)]),
            {"question_id": q[2], "rating": 5}]),
        ),
        (
            &carol,
            json!([choice(q[0], &[o(0, 2)]), choice(q[1], &[o(1, 2), o(1, 1)]),
            {"question_id": q[2], "rating": 3}, {"question_id": q[3], "text": "meh, fine"}]),
        ),
    ];
    for (user, answers) in answers {
        respond_ok(&app, user, &s, answers, StatusCode::CREATED).await;
    }

    let path = format!("/v1/surveys/{}/results", id(&s));
    let results = body_of(get(&app, &alice, &path).await, StatusCode::OK, "results").await;
    assert_eq!(results["survey_id"], s["id"]);
    assert_eq!(results["response_count"], 3);
    let r = &results["questions"];
    let counts = |qi: usize| -> Vec<(String, i64)> {
        r[qi]["options"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o["label"].as_str().unwrap().to_owned(),
                    o["count"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    let pairs = |v: &[(&str, i64)]| -> Vec<(String, i64)> {
        v.iter().map(|(l, c)| ((*l).to_owned(), *c)).collect()
    };
    assert_eq!(counts(0), pairs(&[("red", 2), ("green", 0), ("blue", 1)]));
    assert_eq!(counts(1), pairs(&[("chips", 1), ("nuts", 3), ("fruit", 1)]));
    assert_eq!(r[0]["options"][0]["option_id"], o(0, 0));
    assert_eq!(
        r[2]["rating"],
        json!({"mean": 4.0, "distribution": [0, 0, 1, 1, 1]})
    );
    let answered: Vec<i64> = (0..4).map(|i| r[i]["answered"].as_i64().unwrap()).collect();
    assert_eq!(answered, [3, 3, 3, 2]);
    assert_eq!(
        r[3]["text_answers"],
        json!([
            {"user_id": alice.user_id, "text": "great"},
            {"user_id": carol.user_id, "text": "meh, fine"},
        ])
    );
    assert!(
        r[0]["rating"].is_null() && r[2]["options"].is_null(),
        "{results}"
    );

    // A member sees the same numbers, but not who wrote what.
    let seen = body_of(
        get(&app, &bob, &path).await,
        StatusCode::OK,
        "member results",
    )
    .await;
    assert!(seen["questions"][3]["text_answers"].is_null(), "{seen}");
    assert_eq!(seen["questions"][3]["answered"], 2);
    assert_eq!(
        seen["questions"][0]["options"],
        results["questions"][0]["options"]
    );
    assert_eq!(
        seen["questions"][2]["rating"],
        results["questions"][2]["rating"]
    );
}

#[tokio::test]
async fn after_close_results_stay_hidden_from_responders_until_the_survey_closes() {
    let app = spawn_app().await;
    let (alice, bob, room) = room_with_two(&app).await;
    let s = survey(&app, &alice, &room, two_question_survey()).await;
    assert_eq!(s["results"], "after_close", "the default");
    let answers = json!([choice(question(&s, 0), &[option(&s, 0, 0)])]);
    respond_ok(&app, &bob, &s, answers, StatusCode::CREATED).await;
    let path = format!("/v1/surveys/{}/results", id(&s));

    let hidden = assert_problem(get(&app, &bob, &path).await, 403, "forbidden").await;
    assert!(
        hidden["detail"]
            .as_str()
            .unwrap()
            .contains("once it closes"),
        "{hidden}"
    );
    assert_eq!(get_survey(&app, &bob, &s).await["results_visible"], false);
    let creator = body_of(get(&app, &alice, &path).await, StatusCode::OK, "creator").await;
    assert_eq!(creator["response_count"], 1);

    body_of(close(&app, &alice, &s).await, StatusCode::OK, "close").await;
    let shown = body_of(get(&app, &bob, &path).await, StatusCode::OK, "after close").await;
    assert_eq!(shown["questions"][0]["options"][0]["count"], 1);
    assert_eq!(get_survey(&app, &bob, &s).await["results_visible"], true);
}

#[tokio::test]
async fn after_response_results_show_once_the_caller_has_responded() {
    let app = spawn_app().await;
    let (alice, bob, room) = room_with_two(&app).await;
    let mut body = two_question_survey();
    body["results"] = json!("after_response");
    let s = survey(&app, &alice, &room, body).await;
    let path = format!("/v1/surveys/{}/results", id(&s));
    let hidden = assert_problem(get(&app, &bob, &path).await, 403, "forbidden").await;
    assert!(
        hidden["detail"].as_str().unwrap().contains("responded"),
        "{hidden}"
    );
    let answers = json!([choice(question(&s, 0), &[option(&s, 0, 1)])]);
    respond_ok(&app, &bob, &s, answers, StatusCode::CREATED).await;
    let shown = body_of(get(&app, &bob, &path).await, StatusCode::OK, "results").await;
    assert_eq!(shown["questions"][0]["options"][1]["count"], 1);
}

// ---------------------------------------------------------------------------------------------
// CSV export
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn csv_export_has_one_quoted_defused_row_per_response_for_the_creator_only() {
    let app = spawn_app().await;
    let (alice, bob, room) = room_with_two(&app).await;
    let carol = member(&app, &alice, &room, "carol").await;
    let s = survey(
        &app,
        &alice,
        &room,
        json!({
            "title": "Export",
            "questions": [
                {"kind": "multiple", "prompt": "Pick, any", "options": ["chips", "nuts"]},
                {"kind": "text", "prompt": "Why?"},
                {"kind": "rating", "prompt": "Rate", "scale": 10},
            ],
        }),
    )
    .await;
    let q: Vec<&str> = (0..3).map(|i| question(&s, i)).collect();
    let both = [option(&s, 0, 1), option(&s, 0, 0)];
    let bob_answers = json!([choice(q[0], &both), {"question_id": q[1], "text": "He said \"hi\", then left"},
        {"question_id": q[2], "rating": 9}]);
    let bob_row = respond_ok(&app, &bob, &s, bob_answers, StatusCode::CREATED).await;
    let carol_answers = json!([choice(q[0], &[option(&s, 0, 1)]), {"question_id": q[1], "text": "=1+2"},
        {"question_id": q[2], "rating": 10}]);
    respond_ok(&app, &carol, &s, carol_answers, StatusCode::CREATED).await;

    let path = format!("/v1/surveys/{}/results.csv", id(&s));
    let response = get(&app, &alice, &path).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    assert_eq!(
        response.headers()["content-disposition"],
        format!("attachment; filename=\"survey-{}.csv\"", id(&s)).as_str()
    );
    let csv = response.text().await.unwrap();
    let lines: Vec<&str> = csv.split_terminator("\r\n").collect();
    assert_eq!(lines.len(), 3, "header and one row per response: {csv}");
    assert_eq!(
        lines[0],
        "response_id,user_id,username,submitted_at,updated_at,\"Pick, any\",Why?,Rate"
    );
    let stamp = |at: &Value| {
        chrono::DateTime::parse_from_rfc3339(at.as_str().unwrap())
            .unwrap()
            .to_utc()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let bob_fields = lines[1].split(',').take(5).collect::<Vec<_>>();
    assert_eq!(bob_fields[1], bob.user_id.to_string());
    assert_eq!(bob_fields[2], "bob");
    assert_eq!(bob_fields[3], stamp(&bob_row["submitted_at"]));
    assert!(
        lines[1].ends_with(",chips; nuts,\"He said \"\"hi\"\", then left\",9"),
        "{}",
        lines[1]
    );
    assert!(lines[2].contains(",carol,"), "{}", lines[2]);
    assert!(lines[2].ends_with(",nuts,'=1+2,10"), "{}", lines[2]);

    let denied = get(&app, &bob, &path).await;
    assert_problem(denied, 403, "forbidden").await;
}

// ---------------------------------------------------------------------------------------------
// Permissions
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_survey_in_a_private_community_is_invisible_to_outsiders() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let dave = app.register("dave").await;
    let community = app
        .post(
            "/v1/communities",
            Some(&alice.access_token),
            json!({"name": "hidden", "visibility": "private"}),
        )
        .await;
    let community = body_of(community, StatusCode::CREATED, "community").await;
    let room = app
        .post(
            &format!("/v1/communities/{}/rooms", id(&community)),
            Some(&alice.access_token),
            json!({"name": "inner"}),
        )
        .await;
    let room = body_of(room, StatusCode::CREATED, "room").await;
    let room = id(&room);
    let s = survey(&app, &alice, room, two_question_survey()).await;

    let base = format!("/v1/surveys/{}", id(&s));
    for path in [
        base.clone(),
        format!("{base}/results"),
        format!("{base}/results.csv"),
        format!("{base}/responses/me"),
    ] {
        assert_problem(get(&app, &dave, &path).await, 404, "not_found").await;
    }
    let answers = json!([choice(question(&s, 0), &[option(&s, 0, 0)])]);
    assert_problem(respond(&app, &dave, &s, answers).await, 404, "not_found").await;
    let create = create_survey(&app, &dave, room, two_question_survey()).await;
    assert_problem(create, 404, "not_found").await;
}

#[tokio::test]
async fn members_denied_vote_or_create_polls_by_an_override_get_403() {
    let app = spawn_app().await;
    let (alice, bob, room) = room_with_two(&app).await;
    let s = survey(&app, &alice, &room, two_question_survey()).await;
    let subject = format!("user:{}", bob.user_id);
    deny_in_room(&app, &alice, &room, &subject, &["vote", "create_polls"]).await;

    let answers = json!([choice(question(&s, 0), &[option(&s, 0, 0)])]);
    let body = assert_problem(respond(&app, &bob, &s, answers).await, 403, "forbidden").await;
    assert!(body["detail"].as_str().unwrap().contains("vote"), "{body}");
    let create = create_survey(&app, &bob, &room, two_question_survey()).await;
    assert_problem(create, 403, "forbidden").await;
    // Reading is still allowed.
    assert_eq!(get_survey(&app, &bob, &s).await["id"], s["id"]);
}

// ---------------------------------------------------------------------------------------------
// Live updates
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_response_sends_survey_updated_to_the_room() {
    let app = spawn_app().await;
    let (alice, bob, room) = room_with_two(&app).await;
    let mut watcher = ready(&app, &alice).await;
    let s = survey(&app, &alice, &room, two_question_survey()).await;
    let answers = json!([choice(question(&s, 0), &[option(&s, 0, 0)])]);
    respond_ok(&app, &bob, &s, answers, StatusCode::CREATED).await;

    let event = loop {
        let event = watcher.expect("survey.updated").await;
        if event["survey"]["response_count"] == 1 {
            break event;
        }
    };
    assert_eq!(event["room_id"], room.as_str());
    assert_eq!(event["survey"]["id"], s["id"]);
    assert_eq!(event["survey"]["questions"], s["questions"]);
    assert!(event["survey"]["responded"].is_null(), "room-wide: {event}");
    assert_eq!(event["survey"]["results_visible"], false);
}
