//! The reference web client at `/app/`: off unless enabled, self-contained when on.

use crate::helpers::{assert_problem, spawn_app, spawn_app_with};

#[tokio::test]
async fn the_web_client_is_not_served_unless_enabled() {
    let app = spawn_app().await;
    for path in ["/app", "/app/", "/app/app.js"] {
        assert_problem(app.get(path, None).await, 404, "not_found").await;
    }
}

#[tokio::test]
async fn the_web_client_is_served_from_the_binary_with_a_strict_policy() {
    let app = spawn_app_with(|s| {
        s.insert("web_app".into(), "on".into());
    })
    .await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let bare = no_redirects.get(app.url("/app")).send().await.unwrap();
    assert_eq!(bare.status(), 308);
    assert_eq!(bare.headers()["location"], "/app/");

    let page = app.get("/app/", None).await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(
            policy.contains(directive),
            "{directive} missing from {policy}"
        );
    }
    let html = page.text().await.unwrap();
    assert!(
        html.contains(r#"<script type="module" src="app.js">"#),
        "{html}"
    );

    for (path, content_type) in [
        ("/app/app.js", "text/javascript; charset=utf-8"),
        ("/app/app.css", "text/css; charset=utf-8"),
    ] {
        let asset = app.get(path, None).await;
        assert_eq!(asset.status(), 200, "{path}");
        assert_eq!(asset.headers()["content-type"], content_type, "{path}");
        assert_eq!(
            asset.headers()["x-content-type-options"],
            "nosniff",
            "{path}"
        );
        let body = asset.text().await.unwrap();
        // Everything the page loads comes from this server: no absolute URLs in the assets.
        assert!(
            !body.contains("http://") && !body.contains("https://"),
            "{path} links elsewhere"
        );
    }
    assert!(!html.contains("http://") && !html.contains("https://"));
}
