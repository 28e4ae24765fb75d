//! The JWT attack set: every forged or out-of-policy access token is a 401 problem.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::{Session, TEST_SECRET, TestApp, assert_problem, spawn_app};

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn claims(sub: &str) -> Value {
    json!({"sub": sub, "iat": now(), "nbf": now(), "exp": now() + 600, "iss": "guildhall", "aud": "guildhall-clients"})
}

fn sign(alg: Algorithm, secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().unwrap().remove(key);
    claims
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

async fn status_of(app: &TestApp, token: &str) -> u16 {
    app.get("/v1/users/me", Some(token)).await.status().as_u16()
}

#[tokio::test]
async fn a_token_built_to_the_contract_is_accepted() {
    let app = spawn_app().await;
    let user = app.register("tokenuser").await;
    let sub = user.user_id.to_string();
    // Per PROTOCOL.md: sub, iat, exp, iss, aud, HS256 with the current secret; kid optional.
    let minimal = without(claims(&sub), "nbf");
    assert_eq!(
        status_of(&app, &sign(Algorithm::HS256, TEST_SECRET, &minimal)).await,
        200
    );
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("k1".into());
    let with_kid = jsonwebtoken::encode(
        &header,
        &minimal,
        &EncodingKey::from_secret(TEST_SECRET.as_bytes()),
    )
    .unwrap();
    assert_eq!(status_of(&app, &with_kid).await, 200);
}

/// Forged and out-of-policy variants of `user`'s access token, each named.
fn attack_set(user: &Session) -> Vec<(&'static str, String)> {
    let sub = user.user_id.to_string();
    let good = claims(&sub);

    let none_token = {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(good.to_string());
        format!("{header}.{payload}.")
    };
    let tampered = {
        let real = user.access_token.clone();
        let parts: Vec<&str> = real.split('.').collect();
        let mut payload: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        payload["sub"] = json!(uuid::Uuid::now_v7().to_string());
        format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(payload.to_string()),
            parts[2]
        )
    };
    vec![
        ("alg none", none_token),
        (
            "other key",
            sign(
                Algorithm::HS256,
                "another-secret-0123456789abcdef0123",
                &good,
            ),
        ),
        (
            "other algorithm, same key",
            sign(Algorithm::HS512, TEST_SECRET, &good),
        ),
        ("tampered payload", tampered),
        (
            "expired beyond leeway",
            sign(
                Algorithm::HS256,
                TEST_SECRET,
                &with(good.clone(), "exp", json!(now() - 30)),
            ),
        ),
        (
            "nbf in the future",
            sign(
                Algorithm::HS256,
                TEST_SECRET,
                &with(good.clone(), "nbf", json!(now() + 60)),
            ),
        ),
        (
            "missing aud",
            sign(Algorithm::HS256, TEST_SECRET, &without(good.clone(), "aud")),
        ),
        (
            "missing iss",
            sign(Algorithm::HS256, TEST_SECRET, &without(good.clone(), "iss")),
        ),
        (
            "missing exp",
            sign(Algorithm::HS256, TEST_SECRET, &without(good.clone(), "exp")),
        ),
        (
            "missing iat",
            sign(Algorithm::HS256, TEST_SECRET, &without(good.clone(), "iat")),
        ),
        (
            "missing sub",
            sign(Algorithm::HS256, TEST_SECRET, &without(good.clone(), "sub")),
        ),
        (
            "wrong aud",
            sign(
                Algorithm::HS256,
                TEST_SECRET,
                &with(good.clone(), "aud", json!("someone-else")),
            ),
        ),
        (
            "wrong iss",
            sign(
                Algorithm::HS256,
                TEST_SECRET,
                &with(good.clone(), "iss", json!("evil")),
            ),
        ),
        (
            "sub not a user id",
            sign(
                Algorithm::HS256,
                TEST_SECRET,
                &with(good.clone(), "sub", json!("admin")),
            ),
        ),
        ("garbage", "not.a.jwt".to_owned()),
    ]
}

#[tokio::test]
async fn forged_and_out_of_policy_tokens_are_401() {
    let app = spawn_app().await;
    let user = app.register("victim").await;
    for (name, token) in attack_set(&user) {
        let response = app.get("/v1/users/me", Some(&token)).await;
        assert_eq!(response.status().as_u16(), 401, "{name}");
        assert_problem(response, 401, "unauthorized").await;
    }
    // The untouched token still works, so the 401s above are about the changes.
    assert_eq!(status_of(&app, &user.access_token).await, 200);
}

/// The handshake's answer: 101, or the refusal's status and body.
async fn handshake(app: &TestApp, token: &str, in_header: bool) -> (u16, String) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = if in_header {
        format!("ws://{}/v1/ws", app.addr)
    } else {
        format!("ws://{}/v1/ws?token={token}", app.addr)
    };
    let mut request = url.into_client_request().unwrap();
    if in_header {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((mut stream, response)) => {
            let _ = stream.close(None).await;
            (response.status().as_u16(), String::new())
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            (
                response.status().as_u16(),
                String::from_utf8_lossy(&body).into_owned(),
            )
        }
        Err(other) => panic!("handshake failed without an HTTP answer: {other}"),
    }
}

#[tokio::test]
async fn the_websocket_handshake_refuses_the_same_tokens_with_401() {
    let app = spawn_app().await;
    let user = app.register("wsvictim").await;
    for (name, token) in attack_set(&user) {
        for in_header in [false, true] {
            let (status, body) = handshake(&app, &token, in_header).await;
            assert_eq!(status, 401, "{name} (in header: {in_header}): {body}");
            let problem: Value = serde_json::from_str(&body).unwrap_or_default();
            assert_eq!(problem["code"], "unauthorized", "{name}: {body}");
        }
    }
    for in_header in [false, true] {
        assert_eq!(handshake(&app, &user.access_token, in_header).await.0, 101);
    }
}

#[tokio::test]
async fn missing_or_malformed_authorization_is_401() {
    let app = spawn_app().await;
    for header in ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "token abc"] {
        let mut request = app.client.get(app.url("/v1/users/me"));
        if !header.is_empty() {
            request = request.header("authorization", header);
        }
        assert_problem(request.send().await.unwrap(), 401, "unauthorized").await;
    }
}

/// Key rotation on a running server: a token signed with the earlier secret under its `kid`
/// works on REST and the WebSocket; a login gets a token with the new `kid`.
#[tokio::test]
async fn after_a_key_rotation_tokens_of_the_earlier_key_still_work() {
    const EARLIER: &str = "earlier-secret-0123456789abcdef0123";
    let app = crate::helpers::spawn_app_with(|s| {
        s.insert("jwt_kid".into(), "k2".into());
        s.insert("jwt_previous_secrets".into(), format!("k1={EARLIER}"));
    })
    .await;
    let user = app.register("rotated").await;
    let header = jsonwebtoken::decode_header(&user.access_token).unwrap();
    assert_eq!(header.kid.as_deref(), Some("k2"));
    let earlier_key = |kid: &str| {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.into());
        let claims = claims(&user.user_id.to_string());
        jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_secret(EARLIER.as_bytes()),
        )
        .unwrap()
    };
    let old = earlier_key("k1");
    assert_eq!(status_of(&app, &old).await, 200);
    assert_eq!(handshake(&app, &old, true).await.0, 101);
    // The earlier secret under the current kid is not the current key.
    let mislabelled = earlier_key("k2");
    assert_eq!(status_of(&app, &mislabelled).await, 401);
    assert_eq!(handshake(&app, &mislabelled, false).await.0, 401);
}

/// The handshake's status with `Origin` set (a browser page on that origin).
async fn handshake_from(app: &TestApp, token: &str, origin: &str) -> u16 {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!("ws://{}/v1/ws?token={token}", app.addr);
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("origin", origin.parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok((mut stream, response)) => {
            let _ = stream.close(None).await;
            response.status().as_u16()
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            let problem: Value = serde_json::from_slice(&body).unwrap_or_default();
            assert_eq!(problem["code"], "forbidden", "{problem}");
            response.status().as_u16()
        }
        Err(other) => panic!("handshake failed without an HTTP answer: {other}"),
    }
}

#[tokio::test]
async fn a_foreign_origin_is_refused_on_the_websocket_handshake() {
    let app = spawn_app().await;
    let user = app.register("originvictim").await;
    let own = format!("http://{}", app.addr);
    assert_eq!(handshake_from(&app, &user.access_token, &own).await, 101);
    assert_eq!(
        handshake_from(&app, &user.access_token, "https://evil.example").await,
        403
    );
    assert_eq!(handshake_from(&app, &user.access_token, "null").await, 403);

    let listed = crate::helpers::spawn_app_with(|s| {
        s.insert("ws_origins".into(), "https://app.example".into());
    })
    .await;
    let user = listed.register("originlisted").await;
    assert_eq!(
        handshake_from(&listed, &user.access_token, "https://app.example").await,
        101
    );
    assert_eq!(
        handshake_from(&listed, &user.access_token, "https://evil.example").await,
        403
    );
}
