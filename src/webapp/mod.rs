//! The reference web client at `/app` (`GUILDHALL_WEB_APP=on`): plain HTML, CSS and one ES
//! module, embedded in the binary so a deployment serves it with no CDN and no build step.
//! It talks to the public API only (REST + `/v1/ws`), like any third-party client.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::config::MediaStorage;
use crate::state::AppState;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");
const FAVICON_SVG: &str = include_str!("assets/favicon.svg");

/// `/app/` and its assets; `/app` redirects so relative paths resolve the same way.
pub fn router(storage: Option<&MediaStorage>) -> Router<AppState> {
    let policy = HeaderValue::from_str(&content_security_policy(storage))
        .expect("the policy is built from ASCII origins");
    Router::new()
        .route("/app", get(|| async { Redirect::permanent("/app/") }))
        .route(
            "/app/",
            get(move || async move {
                let mut response = asset("text/html; charset=utf-8", INDEX_HTML);
                response
                    .headers_mut()
                    .insert(header::CONTENT_SECURITY_POLICY, policy);
                response
            }),
        )
        .route(
            "/app/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/app/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route(
            "/app/favicon.svg",
            get(|| async { asset("image/svg+xml", FAVICON_SVG) }),
        )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Revalidated each load: a new server version takes effect on the next page load.
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response()
}

/// Scripts and styles from this origin only; uploads go to and thumbnails come from object
/// storage, the one other origin the page may reach (`'self'` covers the same-origin WebSocket).
fn content_security_policy(storage: Option<&MediaStorage>) -> String {
    let media = storage.map_or(String::new(), |s| {
        let origin = s
            .s3_public_endpoint
            .as_deref()
            .or(s.s3_endpoint.as_deref())
            .map_or("https://*.amazonaws.com", origin_of);
        format!(" {origin}")
    });
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:{media}; \
         connect-src 'self'{media}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

/// `scheme://host[:port]` of an http(s) URL (config validated the scheme).
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(slash) => &url[..after_scheme + slash],
        None => url,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage(endpoint: Option<&str>, public: Option<&str>) -> MediaStorage {
        MediaStorage {
            s3_endpoint: endpoint.map(str::to_owned),
            s3_public_endpoint: public.map(str::to_owned),
            bucket: "b".into(),
            region: "us-east-1".into(),
            lambda_endpoint: None,
            lambda_function: "f".into(),
            callback_secret: crate::config::Secret::new("x".repeat(32)),
            callback_url: None,
        }
    }

    #[test]
    fn the_policy_names_the_origin_browsers_upload_to() {
        let internal_and_public = storage(
            Some("http://s3:9000"),
            Some("https://media.example.com/base"),
        );
        let policy = content_security_policy(Some(&internal_and_public));
        assert!(
            policy.contains("connect-src 'self' https://media.example.com;"),
            "{policy}"
        );
        assert!(!policy.contains("s3:9000"), "{policy}");
        let aws = content_security_policy(Some(&storage(None, None)));
        assert!(
            aws.contains("img-src 'self' blob: https://*.amazonaws.com;"),
            "{aws}"
        );
        let none = content_security_policy(None);
        assert!(none.contains("connect-src 'self';"), "{none}");
    }
}
