//! Every setting, its default and its meaning: the one list that `Config::from_raw` accepts keys
//! from and that the README's configuration reference is printed from
//! (`guildhall config-reference`). A unit test parses these defaults and compares the result
//! with the built-in ones, and another compares the README with the printed table.

use super::DEFAULT_MEDIA_TYPES;

pub struct Setting {
    /// The TOML key; the environment name is `GUILDHALL_` + the key in upper case.
    pub key: &'static str,
    /// What applies when unset, written as one would set it; empty when nothing does (the
    /// meaning says what happens then).
    pub default: &'static str,
    pub meaning: &'static str,
}

const fn s(key: &'static str, default: &'static str, meaning: &'static str) -> Setting {
    Setting {
        key,
        default,
        meaning,
    }
}

pub const SETTINGS: &[Setting] = &[
    s(
        "bind",
        "127.0.0.1:8080",
        "Address and port to listen on (port 0 picks a free one).",
    ),
    s(
        "database_url",
        "",
        "Required. Postgres URL, `postgres://user:password@host:port/db`.",
    ),
    s(
        "database_max_connections",
        "20",
        "Pool size per node; keep nodes x pool under Postgres' `max_connections`.",
    ),
    s(
        "database_acquire_timeout_s",
        "2",
        "Longest wait for a pooled connection before answering 503 `unavailable`.",
    ),
    s(
        "redis_url",
        "",
        "Redis URL (`redis://`, `rediss://`). Unset: single-node mode, with the in-process bus, rate limits and caches.",
    ),
    s(
        "redis_prefix",
        "gh:",
        "Prefix of every Redis key and channel, so deployments can share one Redis.",
    ),
    s(
        "jwt_secret",
        "",
        "Required, at least 32 bytes. HS256 key that signs and checks access tokens.",
    ),
    s(
        "jwt_kid",
        "",
        "Key id written as `kid` into issued tokens (for rotation).",
    ),
    s(
        "jwt_previous_secrets",
        "",
        "Earlier secrets still accepted until their tokens expire: `kid=secret,...`.",
    ),
    s(
        "jwt_issuer",
        "guildhall",
        "`iss` of issued tokens; tokens with another are refused.",
    ),
    s(
        "jwt_audience",
        "guildhall-clients",
        "`aud` of issued tokens; tokens with another are refused.",
    ),
    s(
        "access_token_ttl_s",
        "900",
        "Lifetime of an access token, in seconds.",
    ),
    s(
        "refresh_token_ttl_s",
        "2592000",
        "Lifetime of a refresh token, in seconds (30 days).",
    ),
    s("log", "info,sqlx=warn", "Log filter, in `RUST_LOG` syntax."),
    s(
        "log_format",
        "text",
        "`text` or `json` (one object per line, with request and session ids).",
    ),
    s(
        "auto_migrate",
        "off",
        "Apply pending migrations at start (docker-compose sets it; else run `guildhall migrate up`).",
    ),
    s(
        "rate_limits",
        "on",
        "`off` disables every request and message rate limit (logged at start).",
    ),
    s(
        "rate_limit_auth_per_ip_per_min",
        "60",
        "Logins and registrations per client IP per minute.",
    ),
    s(
        "rate_limit_auth_per_username_per_min",
        "10",
        "Logins per username per minute.",
    ),
    s(
        "rate_limit_messages_per_min",
        "120",
        "Message sends per user per minute, REST and WebSocket together.",
    ),
    s(
        "rate_limit_messages_burst",
        "30",
        "Message sends a user may make at once.",
    ),
    s(
        "rate_limit_typing_per_min",
        "60",
        "Typing notices per user per minute.",
    ),
    s(
        "rate_limit_typing_burst",
        "10",
        "Typing notices a user may send at once.",
    ),
    s(
        "rate_limit_uploads_per_min",
        "30",
        "Upload requests per user per minute.",
    ),
    s(
        "rate_limit_uploads_burst",
        "10",
        "Upload requests a user may make at once.",
    ),
    s(
        "cors_origins",
        "",
        "Browser origins allowed by CORS, comma-separated; `*` = any. Unset: no CORS headers.",
    ),
    s(
        "request_timeout_s",
        "30",
        "Longest a request may take before 503.",
    ),
    s(
        "header_read_timeout_s",
        "10",
        "A connection that has not sent a whole request head in this long (an idle keep-alive one too) is closed.",
    ),
    s(
        "body_limit_bytes",
        "1048576",
        "Largest request body (larger: 413).",
    ),
    s(
        "trust_forwarded_for",
        "off",
        "Take the client IP from the last `X-Forwarded-For` entry (only behind a proxy you run).",
    ),
    s(
        "max_group_depth",
        "8",
        "How deep groups may nest in new communities (1-16).",
    ),
    s(
        "message_max_chars",
        "4000",
        "Longest message, in characters (longer: 413).",
    ),
    s(
        "message_writers",
        "2",
        "Group-commit writer tasks per node; rooms are sharded over them.",
    ),
    s(
        "message_queue",
        "10000",
        "Sends queued per writer before 503 `unavailable` with a retry time.",
    ),
    s(
        "ws_origins",
        "",
        "Browser origins allowed on the WebSocket besides the server's own, comma-separated (`*` = any); clients that send no `Origin` are not browsers and pass.",
    ),
    s(
        "ws_max_frame_bytes",
        "65536",
        "Largest WebSocket frame a client may send (close 1009 past it).",
    ),
    s(
        "ws_outbox",
        "1024",
        "Frames queued per connection before it counts as a slow consumer and is cut off.",
    ),
    s(
        "ws_heartbeat_s",
        "10",
        "Heartbeat interval told to clients; idle sockets close and presence expires after three.",
    ),
    s(
        "resume_max_messages",
        "1000",
        "Most messages one `resume` replays per room; past it, `resync_required`.",
    ),
    s(
        "ballot_secret",
        "",
        "At least 32 bytes; keys anonymous-poll ballots. Unset: derived from `jwt_secret`; set it before rotating that, or open anonymous polls accept a second vote from each voter.",
    ),
    s(
        "event_reminder_s",
        "900",
        "How long before an occurrence `event.starting` goes to those going.",
    ),
    s(
        "s3_endpoint",
        "",
        "S3-compatible endpoint (MinIO, s3s-fs; path-style). Unset: AWS S3. Media is on when this or `s3_bucket` is set.",
    ),
    s(
        "s3_public_endpoint",
        "",
        "The endpoint browsers and apps reach, when it differs (presigned URLs are made for it).",
    ),
    s(
        "s3_bucket",
        "guildhall-media",
        "Bucket for uploads and their variants.",
    ),
    s(
        "s3_region",
        "us-east-1",
        "Region for S3 and Lambda signing.",
    ),
    s(
        "lambda_endpoint",
        "",
        "Lambda invoke endpoint (`cargo lambda watch`). Unset: AWS Lambda.",
    ),
    s(
        "lambda_function",
        "guildhall-media",
        "Name of the media processing function.",
    ),
    s(
        "media_callback_secret",
        "",
        "Required with media, at least 32 bytes; shared with the Lambda, which signs its callback with it.",
    ),
    s(
        "media_callback_url",
        "",
        "Where the Lambda reports back (set it behind a load balancer). Unset: `http://<bound address>/v1/media/callback`.",
    ),
    s(
        "media_allowed_types",
        DEFAULT_MEDIA_TYPES,
        "Content types an upload may declare, comma-separated.",
    ),
    s(
        "media_max_bytes",
        "26214400",
        "Largest upload, in bytes (25 MiB).",
    ),
    s(
        "media_upload_url_ttl_s",
        "900",
        "How long a presigned upload URL stays valid (at most 900).",
    ),
    s(
        "media_download_url_ttl_s",
        "300",
        "How long a presigned download URL stays valid.",
    ),
    s(
        "media_abandon_after_s",
        "3600",
        "Uploads not completed or processed this long after their last change (failed ones: after failing) are removed.",
    ),
    s(
        "media_sweep_interval_s",
        "60",
        "How often abandoned uploads are swept.",
    ),
    s(
        "web_app",
        "off",
        "Serve the reference web client at `/app/`.",
    ),
];

pub fn is_known(key: &str) -> bool {
    SETTINGS.iter().any(|s| s.key == key)
}

/// The Markdown table in the README's configuration reference.
pub fn reference_table() -> String {
    let mut table = String::from("| Environment variable | Default | Meaning |\n|---|---|---|\n");
    for setting in SETTINGS {
        let default = if setting.default.is_empty() {
            "-".to_owned()
        } else {
            format!("`{}`", setting.default)
        };
        table.push_str(&format!(
            "| `GUILDHALL_{}` | {default} | {} |\n",
            setting.key.to_ascii_uppercase(),
            setting.meaning
        ));
    }
    table
}
