//! POSTs the signed result to the API. The signature covers the exact bytes sent, so the body is
//! serialised once and each attempt signs it with a fresh timestamp.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use guildhall_media::{CallbackBody, sign};
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;

use crate::config::Secret;
use crate::error::WorkerError;

const ATTEMPTS: u32 = 3;
const TIMEOUT: Duration = Duration::from_secs(10);

pub struct Notifier {
    http: reqwest::Client,
    secret: Secret,
}

impl Notifier {
    pub fn new(secret: Secret) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder().timeout(TIMEOUT).build()?;
        Ok(Self { http, secret })
    }

    /// Delivers `body`, retrying network errors, 408, 429 and 5xx with a short backoff. A final
    /// failure is an error, so the invocation fails and Lambda's own retry takes over.
    pub async fn send(&self, url: &str, body: &CallbackBody) -> Result<(), WorkerError> {
        let json = serde_json::to_vec(body).expect("the callback body always serialises");
        let mut backoff = Duration::from_millis(250);
        for attempt in 1..=ATTEMPTS {
            let timestamp = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let result = self
                .http
                .post(url)
                .header(CONTENT_TYPE, "application/json")
                .header("X-Guildhall-Timestamp", timestamp.to_string())
                .header(
                    "X-Guildhall-Signature",
                    sign(self.secret.expose(), timestamp, &json),
                )
                .body(json.clone())
                .send()
                .await;
            let retry = match result {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) if retryable(response.status()) => {
                    format!("answered {}", response.status())
                }
                Ok(response) => {
                    return Err(WorkerError::Callback(format!(
                        "refused with {}",
                        response.status()
                    )));
                }
                Err(err) => format!("request failed: {err}"),
            };
            if attempt == ATTEMPTS {
                return Err(WorkerError::Callback(retry));
            }
            tracing::warn!(attempt, %url, "callback {retry}; retrying");
            tokio::time::sleep(backoff).await;
            backoff *= 4;
        }
        unreachable!("the last attempt returns")
    }
}

fn retryable(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
}
