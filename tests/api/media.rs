//! Media end to end, against a real S3-compatible server (s3s-fs) and the real worker binary
//! behind a Lambda invoke endpoint (`cargo lambda watch`), both started by `scripts/test`:
//! presigned PUT, complete, processing, the signed callback, live status, attachments on
//! messages, refusals, access, and cleanup.

use std::time::Duration;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use guildhall_media::fixtures;
use reqwest::StatusCode;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Session, TestApp, assert_problem, problem_fields, spawn_app, spawn_app_with};
use crate::realtime::{body_of, community_of, deny_in_room, private_room_with_two, room_with_two};
use crate::ws::WsClient;

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the suite with scripts/test, which starts s3s-fs and the media Lambda")
    })
}

/// The test's own S3 client: creates the bucket and looks behind the API's back.
fn s3() -> aws_sdk_s3::Client {
    let credentials = Credentials::new(
        env("AWS_ACCESS_KEY_ID"),
        env("AWS_SECRET_ACCESS_KEY"),
        None,
        None,
        "test",
    );
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(env("GUILDHALL_TEST_S3_ENDPOINT"))
        .force_path_style(true)
        .credentials_provider(credentials)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

struct MediaApp {
    app: TestApp,
    bucket: String,
    s3: aws_sdk_s3::Client,
}

/// An app with S3 and the Lambda configured, on a bucket of its own.
async fn media_app_with(
    customize: impl FnOnce(&mut std::collections::BTreeMap<String, String>),
) -> MediaApp {
    let bucket = format!("gh-test-{}", Uuid::new_v4().simple());
    let s3 = s3();
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("bucket created");
    let app = spawn_app_with(|s| {
        s.insert("rate_limits".into(), "off".into());
        s.insert("s3_endpoint".into(), env("GUILDHALL_TEST_S3_ENDPOINT"));
        s.insert("s3_bucket".into(), bucket.clone());
        s.insert(
            "lambda_endpoint".into(),
            env("GUILDHALL_TEST_LAMBDA_ENDPOINT"),
        );
        s.insert(
            "media_callback_secret".into(),
            env("GUILDHALL_TEST_MEDIA_CALLBACK_SECRET"),
        );
        s.insert("media_sweep_interval_s".into(), "1".into());
        customize(s);
    })
    .await;
    MediaApp { app, bucket, s3 }
}

async fn media_app() -> MediaApp {
    media_app_with(|_| {}).await
}

impl MediaApp {
    async fn object(&self, key: &str) -> Option<Vec<u8>> {
        match self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(object) => Some(object.body.collect().await.unwrap().into_bytes().to_vec()),
            Err(err)
                if err.as_service_error().is_some_and(
                    aws_sdk_s3::operation::get_object::GetObjectError::is_no_such_key,
                ) =>
            {
                None
            }
            Err(err) => panic!("GetObject {key}: {err:?}"),
        }
    }

    async fn keys(&self) -> Vec<String> {
        let listed = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .send()
            .await
            .unwrap();
        listed
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect()
    }

    /// Waits (20 s bound) until the sweeper has deleted every object of the bucket.
    async fn wait_until_empty(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let keys = self.keys().await;
            if keys.is_empty() {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "objects left: {keys:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn sql(&self, sql: &str) {
        let db = self.app.db().await;
        db.execute_unprepared(sql).await.unwrap();
    }
}

async fn start_upload(app: &TestApp, user: &Session, body: Value) -> reqwest::Response {
    app.post("/v1/uploads", Some(&user.access_token), body)
        .await
}

async fn ticket(
    app: &TestApp,
    user: &Session,
    room: &str,
    filename: &str,
    content_type: &str,
    size: usize,
) -> Value {
    let body =
        json!({"room_id": room, "filename": filename, "content_type": content_type, "size": size});
    body_of(
        start_upload(app, user, body).await,
        StatusCode::CREATED,
        "create upload",
    )
    .await
}

/// PUTs `bytes` as the ticket says (the HTTP client sets Content-Length from the body).
async fn put(app: &TestApp, ticket: &Value, bytes: Vec<u8>) -> reqwest::Response {
    let upload = &ticket["upload"];
    assert_eq!(upload["method"], "PUT");
    let mut request = app.client.put(upload["url"].as_str().unwrap()).body(bytes);
    for (name, value) in upload["headers"].as_object().unwrap() {
        if !name.eq_ignore_ascii_case("content-length") {
            request = request.header(name, value.as_str().unwrap());
        }
    }
    request.send().await.unwrap()
}

async fn complete(app: &TestApp, user: &Session, id: &str) -> reqwest::Response {
    app.post(
        &format!("/v1/uploads/{id}/complete"),
        Some(&user.access_token),
        json!({}),
    )
    .await
}

async fn attachment(app: &TestApp, user: &Session, id: &str) -> reqwest::Response {
    app.get(&format!("/v1/attachments/{id}"), Some(&user.access_token))
        .await
}

/// Polls the attachment until it leaves pending/processing (the worker runs in debug builds,
/// one invocation at a time, so this allows for a queue).
async fn processed(app: &TestApp, user: &Session, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let view = body_of(
            attachment(app, user, id).await,
            StatusCode::OK,
            "get attachment",
        )
        .await;
        if view["status"] == "ready" || view["status"] == "failed" {
            return view;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {view}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Uploads and completes `bytes`; returns the attachment id.
async fn upload(
    app: &TestApp,
    user: &Session,
    room: &str,
    filename: &str,
    content_type: &str,
    bytes: Vec<u8>,
) -> String {
    let ticket = ticket(app, user, room, filename, content_type, bytes.len()).await;
    let put = put(app, &ticket, bytes).await;
    assert!(
        put.status().is_success(),
        "PUT: {}",
        put.text().await.unwrap()
    );
    let id = ticket["attachment_id"].as_str().unwrap().to_owned();
    body_of(
        complete(app, user, &id).await,
        StatusCode::ACCEPTED,
        "complete",
    )
    .await;
    id
}

/// A 640x400 PNG carrying an EXIF block and a text chunk with a secret in it.
fn png_with_metadata() -> Vec<u8> {
    let comment = [b"Comment\0".as_slice(), fixtures::SECRET].concat();
    fixtures::png_with_chunks(
        &fixtures::png(640, 400),
        &[
            fixtures::png_chunk(b"eXIf", &fixtures::tiff_with_orientation(1)),
            fixtures::png_chunk(b"tEXt", &comment),
        ],
    )
}

async fn wait_for_attachment_event(ws: &mut WsClient, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let frame = ws
            .next(left)
            .await
            .expect("attachment.updated before timeout");
        if frame["type"] == "attachment.updated" && frame["attachment"]["id"] == id {
            return frame;
        }
    }
}

async fn download(app: &TestApp, url: &str) -> Vec<u8> {
    let response = app.client.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "download {url}");
    response.bytes().await.unwrap().to_vec()
}

// ---------------------------------------------------------------------------------------------
// The whole flow
// ---------------------------------------------------------------------------------------------

/// Upload a PNG with metadata: the room hears it is ready, the original comes back without the
/// metadata, the thumbnail downloads at its stated size, and a message carries it.
#[tokio::test]
async fn a_png_is_uploaded_processed_announced_and_attached() {
    let media = media_app().await;
    let app = &media.app;
    let (alice, bob, room) = room_with_two(app).await;
    let (mut bob_ws, _) = WsClient::ready(app, &bob.access_token).await;
    let png = png_with_metadata();
    assert!(fixtures::contains(&png, fixtures::SECRET));

    let id = upload(app, &alice, &room, "holiday.png", "image/png", png).await;
    let event = wait_for_attachment_event(&mut bob_ws, &id).await;
    assert_eq!(event["room_id"], room.as_str());
    assert_eq!(event["attachment"]["status"], "ready", "{event}");
    assert!(event["attachment"]["url"].is_null(), "events carry no URLs");

    let view = body_of(attachment(app, &bob, &id).await, StatusCode::OK, "get").await;
    assert_eq!(view["status"], "ready");
    assert_eq!(view["content_type"], "image/png");
    assert_eq!(
        (view["width"].as_u64(), view["height"].as_u64()),
        (Some(640), Some(400))
    );
    assert!(
        view["blurhash"].as_str().is_some_and(|h| h.len() >= 6),
        "{view}"
    );
    assert_eq!(view["filename"], "holiday.png");

    let original = download(app, view["url"].as_str().unwrap()).await;
    assert_eq!(original.len() as u64, view["size"].as_u64().unwrap());
    assert!(
        !fixtures::contains(&original, fixtures::SECRET),
        "metadata text survived"
    );
    assert!(
        !fixtures::contains(&original, b"eXIf"),
        "EXIF chunk survived"
    );
    assert_eq!(fixtures::decode(&original).width(), 640);

    let variants = view["variants"].as_array().unwrap();
    let thumb = variants
        .iter()
        .find(|v| v["name"] == "thumb_256")
        .expect("256 px thumbnail");
    assert_eq!(
        (thumb["width"].as_u64(), thumb["height"].as_u64()),
        (Some(256), Some(160))
    );
    let bytes = download(app, thumb["url"].as_str().unwrap()).await;
    let image = fixtures::decode(&bytes);
    assert_eq!((image.width(), image.height()), (256, 160));
    assert!(!fixtures::contains(&bytes, fixtures::SECRET));

    let sent = app
        .post(
            &format!("/v1/rooms/{room}/messages"),
            Some(&alice.access_token),
            json!({"content": "look", "attachment_ids": [id]}),
        )
        .await;
    let message = body_of(sent, StatusCode::CREATED, "send with attachment").await;
    let carried = &message["attachments"][0];
    assert_eq!(carried["id"], id.as_str());
    assert_eq!(carried["content_type"], "image/png");
    assert_eq!(carried["width"], 640);
    let history = app
        .get(
            &format!("/v1/rooms/{room}/messages"),
            Some(&bob.access_token),
        )
        .await;
    let history = body_of(history, StatusCode::OK, "history").await;
    let stored = history["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(stored["attachments"][0]["id"], id.as_str(), "{stored}");

    let (mut alice_ws, _) = WsClient::ready(app, &alice.access_token).await;
    alice_ws
        .send(
            json!({"type": "send", "room_id": room, "client_msg_id": "ws-1", "content": "again",
            "attachment_ids": [id]}),
        )
        .await;
    let ack = alice_ws.expect("ack").await;
    assert_eq!(ack["message"]["attachments"][0]["id"], id.as_str(), "{ack}");
    media.app.stop().await;
}

/// Text files are not images: ready without variants, and the download has the same bytes.
#[tokio::test]
async fn a_text_file_is_ready_as_uploaded() {
    let media = media_app().await;
    let app = &media.app;
    let (alice, _bob, room) = room_with_two(app).await;
    let text = b"meeting notes\nline two\n".to_vec();
    let id = upload(
        app,
        &alice,
        &room,
        "notes.txt",
        "text/plain; charset=utf-8",
        text.clone(),
    )
    .await;
    let view = processed(app, &alice, &id).await;
    assert_eq!(view["status"], "ready", "{view}");
    assert_eq!(view["variants"], json!([]));
    assert_eq!(download(app, view["url"].as_str().unwrap()).await, text);
    media.app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Refusals
// ---------------------------------------------------------------------------------------------

/// A file that says it is a PNG but is not fails with a reason; its object is deleted and it
/// cannot be attached.
#[tokio::test]
async fn a_fake_png_fails_and_its_object_is_deleted() {
    let media = media_app().await;
    let app = &media.app;
    let (alice, bob, room) = room_with_two(app).await;
    let (mut bob_ws, _) = WsClient::ready(app, &bob.access_token).await;
    let fake = b"<html><script>alert(1)</script></html> pretending to be a PNG".to_vec();
    let id = upload(app, &alice, &room, "cat.png", "image/png", fake).await;
    let event = wait_for_attachment_event(&mut bob_ws, &id).await;
    assert_eq!(event["attachment"]["status"], "failed");
    let view = processed(app, &alice, &id).await;
    assert_eq!(view["status"], "failed");
    assert!(
        view["failure_reason"]
            .as_str()
            .unwrap()
            .contains("not image/png"),
        "{view}"
    );
    assert!(view["url"].is_null());

    let sent = app
        .post(
            &format!("/v1/rooms/{room}/messages"),
            Some(&alice.access_token),
            json!({"content": "look", "attachment_ids": [id]}),
        )
        .await;
    let body = assert_problem(sent, 422, "validation_failed").await;
    assert_eq!(problem_fields(&body), ["attachment_ids"]);

    media.wait_until_empty().await;
    media.app.stop().await;
}

#[tokio::test]
async fn disallowed_types_bad_sizes_and_names_are_refused() {
    let media = media_app_with(|s| {
        s.insert("media_max_bytes".into(), "1000".into());
    })
    .await;
    let app = &media.app;
    let (alice, _bob, room) = room_with_two(app).await;
    let body = |filename: &str, content_type: &str, size: u64| json!({"room_id": room, "filename": filename, "content_type": content_type, "size": size});
    for content_type in ["image/svg+xml", "text/html", "application/x-msdownload"] {
        let response = start_upload(app, &alice, body("a.bin", content_type, 10)).await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(problem_fields(&problem), ["content_type"], "{content_type}");
    }
    let too_big = start_upload(app, &alice, body("a.png", "image/png", 1001)).await;
    assert_problem(too_big, 413, "payload_too_large").await;
    let empty = start_upload(app, &alice, body("a.png", "image/png", 0)).await;
    assert_eq!(
        problem_fields(&assert_problem(empty, 422, "validation_failed").await),
        ["size"]
    );
    for filename in ["", "../", "\u{202e}", "x".repeat(300).as_str()] {
        let response = start_upload(app, &alice, body(filename, "image/png", 10)).await;
        assert_eq!(
            problem_fields(&assert_problem(response, 422, "validation_failed").await),
            ["filename"]
        );
    }
    let negative = start_upload(
        app,
        &alice,
        json!({"room_id": room, "filename": "a", "content_type": "image/png", "size": -1}),
    )
    .await;
    assert_problem(negative, 422, "validation_failed").await;
    assert_eq!(media.keys().await, Vec::<String>::new());
    media.app.stop().await;
}

/// The signature binds length and type: S3 refuses a longer body, a shorter one, or another
/// content type, and completing without a stored object is a conflict.
#[tokio::test]
async fn storage_refuses_a_put_that_differs_from_the_declaration() {
    let media = media_app().await;
    let app = &media.app;
    let (alice, _bob, room) = room_with_two(app).await;
    let ticket = ticket(app, &alice, &room, "a.txt", "text/plain", 10).await;
    let id = ticket["attachment_id"].as_str().unwrap().to_owned();
    let longer = put(app, &ticket, vec![b'x'; 11 * 1024]).await;
    assert!(
        longer.status().is_client_error(),
        "longer body: {}",
        longer.status()
    );
    let shorter = put(app, &ticket, vec![b'x'; 9]).await;
    assert!(
        shorter.status().is_client_error(),
        "shorter body: {}",
        shorter.status()
    );
    let mut retyped = ticket.clone();
    retyped["upload"]["headers"]["Content-Type"] = json!("text/html");
    let other_type = put(app, &retyped, vec![b'x'; 10]).await;
    assert!(
        other_type.status().is_client_error(),
        "other type: {}",
        other_type.status()
    );
    assert_eq!(media.keys().await, Vec::<String>::new(), "nothing stored");
    assert_problem(complete(app, &alice, &id).await, 409, "conflict").await;

    let exact = put(app, &ticket, vec![b'x'; 10]).await;
    assert!(exact.status().is_success());
    body_of(
        complete(app, &alice, &id).await,
        StatusCode::ACCEPTED,
        "complete",
    )
    .await;
    let again = body_of(
        complete(app, &alice, &id).await,
        StatusCode::ACCEPTED,
        "complete again",
    )
    .await;
    assert_ne!(again["status"], "pending");
    media.app.stop().await;
}

/// The server picks the key; names with paths, NUL or bidi tricks only change the display
/// name, and fields naming a key or bucket are ignored.
#[tokio::test]
async fn clients_cannot_choose_or_escape_the_key() {
    let media = media_app().await;
    let app = &media.app;
    let (alice, _bob, room) = room_with_two(app).await;
    let community = community_of(app, &alice, &room).await;
    let cases = [
        ("../../../etc/passwd", "passwd"),
        ("..\\..\\win.ini", "win.ini"),
        ("a\u{0}b.txt", "ab.txt"),
        ("invoice\u{202e}txt.exe", "invoicetxt.exe"),
        ("%2e%2e%2fx.txt", "%2e%2e%2fx.txt"),
    ];
    for (filename, shown) in cases {
        let body = json!({"room_id": room, "filename": filename, "content_type": "text/plain",
            "size": 3, "key": "../../escape", "bucket": "other-bucket"});
        let ticket = body_of(
            start_upload(app, &alice, body).await,
            StatusCode::CREATED,
            filename,
        )
        .await;
        let id = ticket["attachment_id"].as_str().unwrap();
        assert_eq!(ticket["attachment"]["filename"], shown);
        let url = reqwest::Url::parse(ticket["upload"]["url"].as_str().unwrap()).unwrap();
        assert_eq!(
            url.path(),
            format!("/{}/uploads/{community}/{room}/{id}", media.bucket)
        );
        assert!(
            put(app, &ticket, b"abc".to_vec())
                .await
                .status()
                .is_success()
        );
    }
    let mut keys = media.keys().await;
    keys.sort();
    assert_eq!(keys.len(), cases.len());
    for key in keys {
        let rest = key
            .strip_prefix(&format!("uploads/{community}/{room}/"))
            .unwrap();
        assert!(rest.parse::<Uuid>().is_ok(), "{key}");
    }
    media.app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Access
// ---------------------------------------------------------------------------------------------

/// In a private community an outsider learns nothing (404); a member without upload_media is
/// refused (403) but still reads; a non-member of a public community sees the room but may not
/// upload into it.
#[tokio::test]
async fn outsiders_cannot_upload_complete_or_read() {
    let media = media_app().await;
    let app = &media.app;
    let (alice, bob, _community, room) = private_room_with_two(app).await;
    let carol = app.register("carol").await;
    let body =
        json!({"room_id": room, "filename": "a.txt", "content_type": "text/plain", "size": 3});
    assert_problem(
        start_upload(app, &carol, body.clone()).await,
        404,
        "not_found",
    )
    .await;
    let missing = json!({"room_id": Uuid::now_v7(), "filename": "a.txt", "content_type": "text/plain", "size": 3});
    assert_problem(start_upload(app, &alice, missing).await, 404, "not_found").await;

    deny_in_room(
        app,
        &alice,
        &room,
        &format!("user:{}", bob.user_id),
        &["upload_media"],
    )
    .await;
    assert_problem(
        start_upload(app, &bob, body.clone()).await,
        403,
        "forbidden",
    )
    .await;

    let ticket = ticket(app, &alice, &room, "a.txt", "text/plain", 3).await;
    let id = ticket["attachment_id"].as_str().unwrap();
    assert!(
        put(app, &ticket, b"abc".to_vec())
            .await
            .status()
            .is_success()
    );
    assert_problem(complete(app, &carol, id).await, 404, "not_found").await;
    assert_problem(complete(app, &bob, id).await, 404, "not_found").await;
    assert_problem(attachment(app, &carol, id).await, 404, "not_found").await;
    body_of(
        attachment(app, &bob, id).await,
        StatusCode::OK,
        "a room member reads it",
    )
    .await;
    assert_problem(
        app.get(&format!("/v1/attachments/{id}"), None).await,
        401,
        "unauthorized",
    )
    .await;

    let open = app
        .post(
            "/v1/communities",
            Some(&alice.access_token),
            json!({"name": "open", "visibility": "public"}),
        )
        .await;
    let open = body_of(open, StatusCode::CREATED, "public community").await;
    let public_room = app
        .post(
            &format!("/v1/communities/{}/rooms", open["id"].as_str().unwrap()),
            Some(&alice.access_token),
            json!({"name": "lobby"}),
        )
        .await;
    let public_room = body_of(public_room, StatusCode::CREATED, "public room").await;
    let public = json!({"room_id": public_room["id"], "filename": "a.txt", "content_type": "text/plain", "size": 3});
    assert_problem(start_upload(app, &carol, public).await, 403, "forbidden").await;
    media.app.stop().await;
}

/// Only ready attachments the sender uploaded into the same room can ride on a message.
#[tokio::test]
async fn messages_only_carry_the_senders_ready_attachments_of_that_room() {
    let media = media_app().await;
    let app = &media.app;
    let (alice, bob, room) = room_with_two(app).await;
    let community = community_of(app, &alice, &room).await;
    let other: Value = body_of(
        app.post(
            &format!("/v1/communities/{community}/rooms"),
            Some(&alice.access_token),
            json!({"name": "other"}),
        )
        .await,
        StatusCode::CREATED,
        "other room",
    )
    .await;
    let other = other["id"].as_str().unwrap().to_owned();
    // Ready without the worker, to isolate the message rule.
    let in_room = ready_upload(&media, &alice, &room).await;
    let pending = ticket(app, &alice, &room, "b.txt", "text/plain", 3).await;
    let pending = pending["attachment_id"].as_str().unwrap().to_owned();
    let send = |user: &Session, room: &str, ids: Value| {
        let path = format!("/v1/rooms/{room}/messages");
        let token = user.access_token.clone();
        async move {
            app.post(
                &path,
                Some(&token),
                json!({"content": "x", "attachment_ids": ids}),
            )
            .await
        }
    };
    for (user, target, ids) in [
        (&alice, other.as_str(), json!([in_room])),
        (&bob, room.as_str(), json!([in_room])),
        (&alice, room.as_str(), json!([pending])),
        (&alice, room.as_str(), json!([Uuid::now_v7()])),
        (&alice, room.as_str(), json!([in_room, in_room])),
    ] {
        let response = send(user, target, ids.clone()).await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(problem_fields(&problem), ["attachment_ids"], "{ids}");
    }
    let ok = body_of(
        send(&alice, &room, json!([in_room])).await,
        StatusCode::CREATED,
        "own, ready, same room",
    )
    .await;
    assert_eq!(ok["attachments"][0]["id"], in_room.as_str());
    media.app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The callback
// ---------------------------------------------------------------------------------------------

fn signed(secret: &str, ts: i64, body: &Value) -> (String, String) {
    let text = body.to_string();
    (
        guildhall_media::sign(secret.as_bytes(), ts as u64, text.as_bytes()),
        text,
    )
}

async fn post_callback(app: &TestApp, ts: i64, signature: &str, body: String) -> reqwest::Response {
    app.client
        .post(app.url("/v1/media/callback"))
        .header("content-type", "application/json")
        .header("x-guildhall-timestamp", ts.to_string())
        .header("x-guildhall-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Forged, stale and replayed callbacks change nothing; the genuine one is taken once.
#[tokio::test]
async fn forged_stale_and_replayed_callbacks_are_rejected() {
    let media = media_app().await;
    let app = &media.app;
    let (alice, _bob, room) = room_with_two(app).await;
    let ticket = ticket(app, &alice, &room, "a.png", "image/png", 100).await;
    let id = ticket["attachment_id"].as_str().unwrap().to_owned();
    // Processing without invoking the worker, so only this test's callbacks arrive.
    media
        .sql(&format!(
            "UPDATE attachments SET status = 'processing' WHERE id = '{id}'"
        ))
        .await;
    let secret = env("GUILDHALL_TEST_MEDIA_CALLBACK_SECRET");
    let verdict = json!({"attachment_id": id, "status": "ready", "reason": null, "content_type": "image/png",
        "size": 90, "width": 10, "height": 10, "blurhash": "LEHV6nWB2yk8", "variants": []});
    let now = chrono::Utc::now().timestamp();

    let (forged, body) = signed(
        "not-the-secret-not-the-secret-not-the-secret",
        now,
        &verdict,
    );
    assert_problem(
        post_callback(app, now, &forged, body).await,
        401,
        "unauthorized",
    )
    .await;
    let (stale, body) = signed(&secret, now - 3600, &verdict);
    assert_problem(
        post_callback(app, now - 3600, &stale, body).await,
        401,
        "unauthorized",
    )
    .await;
    let (good, body) = signed(&secret, now, &verdict);
    let mut tampered = verdict.clone();
    tampered["width"] = json!(99_999);
    assert_problem(
        post_callback(app, now, &good, tampered.to_string()).await,
        401,
        "unauthorized",
    )
    .await;
    let view = body_of(attachment(app, &alice, &id).await, StatusCode::OK, "get").await;
    assert_eq!(view["status"], "processing", "nothing changed yet");

    let accepted = post_callback(app, now, &good, body.clone()).await;
    assert_eq!(accepted.status(), StatusCode::NO_CONTENT);
    assert_problem(post_callback(app, now, &good, body).await, 409, "conflict").await;
    let view = body_of(attachment(app, &alice, &id).await, StatusCode::OK, "get").await;
    assert_eq!(
        (view["status"].as_str(), view["width"].as_u64()),
        (Some("ready"), Some(10))
    );

    // A fresh, validly signed verdict for an attachment already decided is refused too.
    let failed = json!({"attachment_id": id, "status": "failed", "reason": "late", "content_type": null,
        "size": null, "width": null, "height": null, "blurhash": null, "variants": []});
    let (late, body) = signed(&secret, now + 1, &failed);
    assert_problem(
        post_callback(app, now + 1, &late, body).await,
        409,
        "conflict",
    )
    .await;
    assert_eq!(
        body_of(attachment(app, &alice, &id).await, StatusCode::OK, "get").await["status"],
        "ready"
    );
    media.app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Cleanup and configuration
// ---------------------------------------------------------------------------------------------

/// An upload never completed is removed with its object once abandoned.
#[tokio::test]
async fn abandoned_uploads_are_cleaned_up() {
    let media = media_app_with(|s| {
        s.insert("media_upload_url_ttl_s".into(), "2".into());
        s.insert("media_abandon_after_s".into(), "2".into());
    })
    .await;
    let app = &media.app;
    let (alice, _bob, room) = room_with_two(app).await;
    let ticket = ticket(app, &alice, &room, "a.txt", "text/plain", 3).await;
    let id = ticket["attachment_id"].as_str().unwrap().to_owned();
    assert!(
        put(app, &ticket, b"abc".to_vec())
            .await
            .status()
            .is_success()
    );
    let kept = ready_upload(&media, &alice, &room).await;
    assert_eq!(media.keys().await.len(), 2);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let gone = attachment(app, &alice, &id).await.status() == StatusCode::NOT_FOUND;
        let keys = media.keys().await;
        if gone && keys.len() == 1 {
            assert!(keys[0].ends_with(&kept), "the ready upload stays: {keys:?}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still there: {keys:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        media
            .object(&format!(
                "uploads/{}/{room}/{id}",
                community_of(app, &alice, &room).await
            ))
            .await
            .is_none()
    );
    media.app.stop().await;
}

/// An upload made ready (without the worker, whose timing is not this test's subject); it
/// must survive the sweep.
async fn ready_upload(media: &MediaApp, user: &Session, room: &str) -> String {
    let ticket = ticket(&media.app, user, room, "keep.txt", "text/plain", 4).await;
    assert!(
        put(&media.app, &ticket, b"keep".to_vec())
            .await
            .status()
            .is_success()
    );
    let id = ticket["attachment_id"].as_str().unwrap().to_owned();
    media
        .sql(&format!(
            "UPDATE attachments SET status = 'processing' WHERE id = '{id}';
             UPDATE attachments SET status = 'ready', content_type = 'text/plain', size = 4 WHERE id = '{id}'"
        ))
        .await;
    id
}

/// Deleting a room takes its attachments' objects with it (the delete trigger queues them).
#[tokio::test]
async fn deleting_a_room_deletes_its_objects() {
    let media = media_app().await;
    let app = &media.app;
    let (alice, _bob, room) = room_with_two(app).await;
    ready_upload(&media, &alice, &room).await;
    let pending = ticket(app, &alice, &room, "p.txt", "text/plain", 3).await;
    assert!(
        put(app, &pending, b"abc".to_vec())
            .await
            .status()
            .is_success()
    );
    assert_eq!(media.keys().await.len(), 2);
    let deleted = app
        .request(
            reqwest::Method::DELETE,
            &format!("/v1/rooms/{room}"),
            Some(&alice.access_token),
            None,
        )
        .await;
    assert!(
        deleted.status().is_success(),
        "delete room: {}",
        deleted.status()
    );
    media.wait_until_empty().await;
    media.app.stop().await;
}

#[tokio::test]
async fn media_answers_503_without_object_storage() {
    let app = spawn_app().await;
    let (alice, _bob, room) = room_with_two(&app).await;
    let body =
        json!({"room_id": room, "filename": "a.txt", "content_type": "text/plain", "size": 3});
    let problem = assert_problem(start_upload(&app, &alice, body).await, 503, "unavailable").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("GUILDHALL_S3"),
        "{problem}"
    );
    let id = Uuid::now_v7();
    assert_problem(
        attachment(&app, &alice, &id.to_string()).await,
        503,
        "unavailable",
    )
    .await;
    assert_problem(
        complete(&app, &alice, &id.to_string()).await,
        503,
        "unavailable",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn upload_requests_beyond_the_users_rate_are_refused_429() {
    let media = media_app_with(|s| {
        s.insert("rate_limits".into(), "on".into());
        s.insert("rate_limit_uploads_burst".into(), "2".into());
        s.insert("rate_limit_uploads_per_min".into(), "1".into());
    })
    .await;
    let app = &media.app;
    let (alice, bob, room) = room_with_two(app).await;
    let body =
        json!({"room_id": room, "filename": "a.txt", "content_type": "text/plain", "size": 3});
    for _ in 0..2 {
        let response = start_upload(app, &alice, body.clone()).await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let refused = start_upload(app, &alice, body.clone()).await;
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_problem(refused, 429, "rate_limited").await;
    let pending: i64 = media
        .app
        .db()
        .await
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            "SELECT count(*) AS n FROM attachments".to_owned(),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "n")
        .unwrap();
    assert_eq!(pending, 2, "a refused request stores nothing");
    // Bob's bucket is his own.
    assert_eq!(
        start_upload(app, &bob, body).await.status(),
        StatusCode::CREATED
    );
    media.app.stop().await;
}
