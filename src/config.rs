//! Typed configuration, layered: defaults -> optional TOML file -> `GUILDHALL_*` environment.
//!
//! Every setting has one flat key; its environment name is `GUILDHALL_` + the key in upper case
//! (`bind` <-> `GUILDHALL_BIND`). A missing or invalid setting fails with one line naming it.
//! Imports nothing internal.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::ratelimit::Rate;

mod settings;
pub use settings::{SETTINGS, Setting, reference_table};

/// A value that never prints itself (Debug and Display are redacted).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct JwtConfig {
    pub secret: Secret<String>,
    /// Key id of `secret`, written as `kid` into issued tokens.
    pub kid: Option<String>,
    /// Earlier secrets by key id, still accepted so tokens signed before a rotation stay valid
    /// until they expire.
    pub previous: Vec<(String, Secret<String>)>,
    pub issuer: String,
    pub audience: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    /// `GUILDHALL_RATE_LIMITS=off` disables every limit (load tests, trusted deployments).
    pub enabled: bool,
    /// Login + register attempts per client IP (burst = the per-minute rate).
    pub auth_per_ip: Rate,
    /// Login attempts per username (slows password guessing against one account).
    pub auth_per_username: Rate,
    /// Message sends per user, REST and WebSocket together.
    pub messages: Rate,
    /// Typing notices per user, over all rooms and sessions (after the per-room 1 s coalescing).
    pub typing: Rate,
    /// Upload requests (presigned URLs) per user.
    pub uploads: Rate,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub database_url: Secret<String>,
    pub database_max_connections: u32,
    /// Longest wait for a pooled connection (and for a new one) before `unavailable`.
    pub database_acquire_timeout: Duration,
    /// `None` = single-node mode: in-process bus, rate limits and caches.
    pub redis_url: Option<Secret<String>>,
    /// Prefix of every Redis key and channel, so deployments (and parallel tests) can share a Redis.
    pub redis_prefix: String,
    pub jwt: JwtConfig,
    pub log: String,
    pub log_format: LogFormat,
    pub auto_migrate: bool,
    pub rate_limits: RateLimitConfig,
    /// Browser origins allowed by CORS; empty = no CORS headers; `*` = any origin.
    pub cors_origins: Vec<String>,
    pub request_timeout: Duration,
    /// A connection that has not sent a whole request head within this is closed.
    pub header_read_timeout: Duration,
    pub body_limit_bytes: usize,
    /// Take the client IP from the last `X-Forwarded-For` entry (only behind a trusted proxy).
    pub trust_forwarded_for: bool,
    /// How deep groups may nest in new communities (1-16).
    pub max_group_depth: u32,
    pub messaging: MessagingConfig,
    /// Keys the hash that marks "this user voted in this anonymous poll"; derived from the JWT
    /// secret unless set (set it to keep ballots valid across a JWT secret rotation).
    pub ballot_secret: Secret<String>,
    /// How long before an occurrence `event.starting` goes to those who said going.
    pub event_reminder: Duration,
    pub media: MediaConfig,
    /// Serve the reference web client at `/app`.
    pub web_app: bool,
}

#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// `None` when no object storage is configured: media endpoints answer 503 `unavailable`.
    pub storage: Option<MediaStorage>,
    /// Declared content types an upload may have (bare media types, lower case).
    pub allowed_types: Vec<String>,
    pub max_bytes: u64,
    /// How long a presigned PUT stays valid (at most 15 min).
    pub upload_url_ttl: Duration,
    /// How long a presigned GET stays valid.
    pub download_url_ttl: Duration,
    /// Uploads not completed (or not processed) this long after their last change are removed;
    /// failed ones this long after failing.
    pub abandon_after: Duration,
    pub sweep_interval: Duration,
}

/// Where uploads go and who processes them.
#[derive(Debug, Clone)]
pub struct MediaStorage {
    /// A non-AWS S3 endpoint (MinIO, s3s-fs); path-style addressing is used with it.
    pub s3_endpoint: Option<String>,
    /// The endpoint clients reach, when it differs from ours (a container name inside, a public
    /// host outside): presigned URLs are made for it.
    pub s3_public_endpoint: Option<String>,
    pub bucket: String,
    pub region: String,
    /// A non-AWS Lambda invoke endpoint (`cargo lambda watch`).
    pub lambda_endpoint: Option<String>,
    pub lambda_function: String,
    /// Shared with the Lambda: it signs its callback with this.
    pub callback_secret: Secret<String>,
    /// Where the Lambda reports back; default: this node's bound address + `/v1/media/callback`.
    pub callback_url: Option<String>,
}

#[derive(Debug, Clone)]
pub struct MessagingConfig {
    /// Longest message content, in characters (longer: 413 `payload_too_large`).
    pub max_chars: usize,
    /// Group-commit writer tasks; rooms are sharded over them.
    pub writers: usize,
    /// Queued sends per writer before `unavailable` + retry_after.
    pub queue: usize,
    /// Browser `Origin`s allowed on the WebSocket besides the server's own (`*` = any);
    /// non-browser clients send none and pass.
    pub ws_origins: Vec<String>,
    pub ws_max_frame_bytes: usize,
    /// Frames queued per connection before it counts as a slow consumer and is cut off.
    pub ws_outbox: usize,
    pub heartbeat: Duration,
    /// Most messages one `resume` replays per room; past it the client gets `resync_required`.
    pub resume_max: u64,
}

/// One clear line naming the setting, e.g. `GUILDHALL_BIND: "x" is not a socket address`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{setting}: {problem}")]
pub struct ConfigError {
    pub setting: String,
    pub problem: String,
}

/// The default allow-list: common images, PDF, plain text, zip.
pub const DEFAULT_MEDIA_TYPES: &str =
    "image/jpeg,image/png,image/webp,image/gif,application/pdf,text/plain,application/zip";

const MIN_JWT_SECRET_BYTES: usize = 32;

fn env_name(key: &str) -> String {
    format!("GUILDHALL_{}", key.to_ascii_uppercase())
}

/// `kid=secret` pairs, comma-separated: distinct ids, none the current `jwt_kid`, each secret
/// as long as `jwt_secret` must be.
fn previous_secrets(
    raw: Option<&str>,
    current: Option<&str>,
) -> Result<Vec<(String, Secret<String>)>, ConfigError> {
    let key = "jwt_previous_secrets";
    let mut pairs: Vec<(String, Secret<String>)> = Vec::new();
    for entry in raw
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let Some((kid, secret)) = entry.split_once('=') else {
            return Err(error(key, "entries are kid=secret, comma-separated"));
        };
        let kid = kid.trim();
        if kid.is_empty() || Some(kid) == current || pairs.iter().any(|(k, _)| k == kid) {
            return Err(error(
                key,
                format!("key id {kid:?} is empty, repeated or the current jwt_kid"),
            ));
        }
        if secret.len() < MIN_JWT_SECRET_BYTES {
            return Err(error(
                key,
                format!("the secret of {kid:?} must be at least {MIN_JWT_SECRET_BYTES} bytes"),
            ));
        }
        pairs.push((kid.to_owned(), Secret(secret.to_owned())));
    }
    Ok(pairs)
}

fn error(key: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        setting: env_name(key),
        problem: problem.into(),
    }
}

impl Config {
    /// Reads the optional TOML file, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut raw = match file {
            Some(path) => read_toml(path)?,
            None => BTreeMap::new(),
        };
        overlay_env(&mut raw, std::env::vars());
        Self::from_raw(&raw)
    }

    /// Builds from `key -> value` pairs (keys as in the TOML file); used by tests and `load`.
    pub fn from_raw(raw: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        if let Some(unknown) = raw.keys().find(|k| !settings::is_known(k)) {
            return Err(error(unknown, "unknown setting"));
        }
        let get = |key: &str| raw.get(key).map(String::as_str).filter(|v| !v.is_empty());
        let jwt_secret = required(get("jwt_secret"), "jwt_secret")?;
        if jwt_secret.len() < MIN_JWT_SECRET_BYTES {
            return Err(error(
                "jwt_secret",
                format!("must be at least {MIN_JWT_SECRET_BYTES} bytes"),
            ));
        }
        Ok(Self {
            bind: parse_or(get("bind"), "bind", "127.0.0.1:8080".parse().unwrap())?,
            database_url: Secret(database_url(get("database_url"))?),
            database_max_connections: positive(
                get("database_max_connections"),
                "database_max_connections",
                20,
            )?,
            database_acquire_timeout: Duration::from_secs(positive(
                get("database_acquire_timeout_s"),
                "database_acquire_timeout_s",
                2,
            )?),
            redis_url: get("redis_url")
                .map(|u| redis_url(u).map(Secret))
                .transpose()?,
            redis_prefix: get("redis_prefix").unwrap_or("gh:").to_owned(),
            jwt: JwtConfig {
                secret: Secret(jwt_secret.to_owned()),
                kid: get("jwt_kid").map(str::to_owned),
                previous: previous_secrets(get("jwt_previous_secrets"), get("jwt_kid"))?,
                issuer: get("jwt_issuer").unwrap_or("guildhall").to_owned(),
                audience: get("jwt_audience")
                    .unwrap_or("guildhall-clients")
                    .to_owned(),
                access_ttl: Duration::from_secs(positive(
                    get("access_token_ttl_s"),
                    "access_token_ttl_s",
                    900,
                )?),
                refresh_ttl: Duration::from_secs(positive(
                    get("refresh_token_ttl_s"),
                    "refresh_token_ttl_s",
                    30 * 24 * 3600,
                )?),
            },
            log: get("log").unwrap_or("info,sqlx=warn").to_owned(),
            log_format: match get("log_format").unwrap_or("text") {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => {
                    return Err(error(
                        "log_format",
                        format!("{other:?} is not text or json"),
                    ));
                }
            },
            auto_migrate: flag(get("auto_migrate"), "auto_migrate", false)?,
            rate_limits: RateLimitConfig {
                enabled: flag(get("rate_limits"), "rate_limits", true)?,
                auth_per_ip: rate(&get, "auth_per_ip", 60, None)?,
                auth_per_username: rate(&get, "auth_per_username", 10, None)?,
                messages: rate(&get, "messages", 120, Some(30))?,
                typing: rate(&get, "typing", 60, Some(10))?,
                uploads: rate(&get, "uploads", 30, Some(10))?,
            },
            cors_origins: cors_origins(get("cors_origins"))?,
            request_timeout: Duration::from_secs(positive(
                get("request_timeout_s"),
                "request_timeout_s",
                30,
            )?),
            header_read_timeout: Duration::from_secs(positive(
                get("header_read_timeout_s"),
                "header_read_timeout_s",
                10,
            )?),
            body_limit_bytes: positive(get("body_limit_bytes"), "body_limit_bytes", 1024 * 1024)?,
            trust_forwarded_for: flag(get("trust_forwarded_for"), "trust_forwarded_for", false)?,
            messaging: MessagingConfig {
                max_chars: positive(get("message_max_chars"), "message_max_chars", 4000)?,
                writers: positive(get("message_writers"), "message_writers", 2)?,
                queue: positive(get("message_queue"), "message_queue", 10_000)?,
                ws_origins: cors_origins(get("ws_origins"))
                    .map_err(|e| error("ws_origins", e.problem))?,
                ws_max_frame_bytes: positive(
                    get("ws_max_frame_bytes"),
                    "ws_max_frame_bytes",
                    64 * 1024,
                )?,
                ws_outbox: positive(get("ws_outbox"), "ws_outbox", 1024)?,
                heartbeat: Duration::from_secs(positive(
                    get("ws_heartbeat_s"),
                    "ws_heartbeat_s",
                    10,
                )?),
                resume_max: positive(get("resume_max_messages"), "resume_max_messages", 1000)?,
            },
            ballot_secret: Secret(match get("ballot_secret") {
                Some(secret) if secret.len() < MIN_JWT_SECRET_BYTES => {
                    return Err(error(
                        "ballot_secret",
                        format!("must be at least {MIN_JWT_SECRET_BYTES} bytes"),
                    ));
                }
                Some(secret) => secret.to_owned(),
                None => format!("ballots:{jwt_secret}"),
            }),
            event_reminder: Duration::from_secs(positive(
                get("event_reminder_s"),
                "event_reminder_s",
                900,
            )?),
            max_group_depth: match positive(get("max_group_depth"), "max_group_depth", 8u32)? {
                depth @ 1..=16 => depth,
                _ => return Err(error("max_group_depth", "must be 1-16")),
            },
            media: media(&get)?,
            web_app: flag(get("web_app"), "web_app", false)?,
        })
    }
}

fn seconds(value: Option<&str>, key: &str, default: u64) -> Result<Duration, ConfigError> {
    positive(value, key, default).map(Duration::from_secs)
}

fn media<'a>(get: &impl Fn(&str) -> Option<&'a str>) -> Result<MediaConfig, ConfigError> {
    let upload_url_ttl = seconds(get("media_upload_url_ttl_s"), "media_upload_url_ttl_s", 900)?;
    if upload_url_ttl > Duration::from_secs(900) {
        return Err(error(
            "media_upload_url_ttl_s",
            "must be at most 900 (15 min)",
        ));
    }
    let abandon_after = seconds(get("media_abandon_after_s"), "media_abandon_after_s", 3600)?;
    if abandon_after < upload_url_ttl {
        return Err(error(
            "media_abandon_after_s",
            "must be at least GUILDHALL_MEDIA_UPLOAD_URL_TTL_S (an upload URL must not outlive its row)",
        ));
    }
    Ok(MediaConfig {
        storage: media_storage(get)?,
        allowed_types: media_types(get("media_allowed_types").unwrap_or(DEFAULT_MEDIA_TYPES))?,
        max_bytes: positive(get("media_max_bytes"), "media_max_bytes", 25 * 1024 * 1024)?,
        upload_url_ttl,
        download_url_ttl: seconds(
            get("media_download_url_ttl_s"),
            "media_download_url_ttl_s",
            300,
        )?,
        abandon_after,
        sweep_interval: seconds(get("media_sweep_interval_s"), "media_sweep_interval_s", 60)?,
    })
}

/// Object storage is configured by naming a bucket or an endpoint; the Lambda then needs the
/// shared callback secret.
fn media_storage<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
) -> Result<Option<MediaStorage>, ConfigError> {
    if get("s3_bucket").is_none() && get("s3_endpoint").is_none() {
        return Ok(None);
    }
    let http_url = |key: &str| -> Result<Option<String>, ConfigError> {
        match get(key) {
            Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => {
                Err(error(key, format!("{url:?} is not an http(s) URL")))
            }
            other => Ok(other.map(|u| u.trim_end_matches('/').to_owned())),
        }
    };
    let secret = required(get("media_callback_secret"), "media_callback_secret")
        .map_err(|_| error("media_callback_secret", "required when S3 is configured"))?;
    if secret.len() < MIN_JWT_SECRET_BYTES {
        return Err(error(
            "media_callback_secret",
            format!("must be at least {MIN_JWT_SECRET_BYTES} bytes"),
        ));
    }
    Ok(Some(MediaStorage {
        s3_endpoint: http_url("s3_endpoint")?,
        s3_public_endpoint: http_url("s3_public_endpoint")?,
        bucket: get("s3_bucket").unwrap_or("guildhall-media").to_owned(),
        region: get("s3_region").unwrap_or("us-east-1").to_owned(),
        lambda_endpoint: http_url("lambda_endpoint")?,
        lambda_function: get("lambda_function")
            .unwrap_or("guildhall-media")
            .to_owned(),
        callback_secret: Secret(secret.to_owned()),
        callback_url: http_url("media_callback_url")?,
    }))
}

fn media_types(list: &str) -> Result<Vec<String>, ConfigError> {
    let types: Vec<String> = list
        .split(',')
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    let valid = |t: &String| {
        let mut parts = t.splitn(2, '/');
        let token = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
        };
        parts.next().is_some_and(token) && parts.next().is_some_and(token)
    };
    match types.iter().find(|t| !valid(t)) {
        Some(bad) => Err(error(
            "media_allowed_types",
            format!("{bad:?} is not a media type like image/png"),
        )),
        None if types.is_empty() => {
            Err(error("media_allowed_types", "must list at least one type"))
        }
        None => Ok(types),
    }
}

fn read_toml(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let file_error = |problem: String| ConfigError {
        setting: format!("--config {}", path.display()),
        problem,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| file_error(e.message().to_owned()))?;
    table
        .into_iter()
        .map(|(key, value)| {
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Array(items) => items
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| format!("{v:?}"), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(","),
                other => return Err(error(&key, format!("unsupported TOML value {other:?}"))),
            };
            Ok((key, text))
        })
        .collect()
}

/// Environment wins over the file. Only known keys are taken from the environment, so unrelated
/// `GUILDHALL_*` variables (for example the test suite's) do not break start-up.
pub fn overlay_env(
    raw: &mut BTreeMap<String, String>,
    vars: impl Iterator<Item = (String, String)>,
) {
    for (name, value) in vars {
        let Some(key) = name.strip_prefix("GUILDHALL_") else {
            continue;
        };
        let key = key.to_ascii_lowercase();
        if settings::is_known(&key) {
            raw.insert(key, value);
        }
    }
}

fn required<'a>(value: Option<&'a str>, key: &str) -> Result<&'a str, ConfigError> {
    value.ok_or_else(|| error(key, "required but not set"))
}

fn parse_or<T: std::str::FromStr>(
    value: Option<&str>,
    key: &str,
    default: T,
) -> Result<T, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| error(key, format!("{v:?} is not valid here"))),
    }
}

fn positive<T>(value: Option<&str>, key: &str, default: T) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + Default,
{
    let parsed: T = parse_or(value, key, default)?;
    if parsed <= T::default() {
        return Err(error(key, "must be a positive number"));
    }
    Ok(parsed)
}

/// `rate_limit_<name>_per_min`, and `rate_limit_<name>_burst` when the limit has one (else the
/// burst is the per-minute rate).
fn rate<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
    name: &str,
    per_min: u32,
    burst: Option<u32>,
) -> Result<Rate, ConfigError> {
    let key = format!("rate_limit_{name}_per_min");
    let per_min = positive(get(&key), &key, per_min)?;
    let burst = match burst {
        Some(default) => {
            let key = format!("rate_limit_{name}_burst");
            positive(get(&key), &key, default)?
        }
        None => per_min,
    };
    Ok(Rate { burst, per_min })
}

fn flag(value: Option<&str>, key: &str, default: bool) -> Result<bool, ConfigError> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("1" | "true" | "on" | "yes") => Ok(true),
        Some("0" | "false" | "off" | "no") => Ok(false),
        Some(other) => Err(error(key, format!("{other:?} is not on/off/true/false"))),
    }
}

fn database_url(value: Option<&str>) -> Result<String, ConfigError> {
    let url = required(value, "database_url")?;
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(error(
            "database_url",
            "must start with postgres:// or postgresql://",
        ));
    }
    Ok(url.to_owned())
}

fn redis_url(url: &str) -> Result<String, ConfigError> {
    if !(url.starts_with("redis://")
        || url.starts_with("rediss://")
        || url.starts_with("redis+unix://"))
    {
        return Err(error(
            "redis_url",
            "must start with redis:// (or be unset for single-node mode)",
        ));
    }
    Ok(url.to_owned())
}

fn cors_origins(value: Option<&str>) -> Result<Vec<String>, ConfigError> {
    let origins: Vec<String> = value
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(str::to_owned)
        .collect();
    for origin in &origins {
        let valid =
            origin == "*" || origin.starts_with("http://") || origin.starts_with("https://");
        if !valid || origin.ends_with('/') {
            return Err(error(
                "cors_origins",
                format!("{origin:?} is not an origin like https://app.example"),
            ));
        }
    }
    Ok(origins)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> BTreeMap<String, String> {
        [
            ("database_url", "postgres://u@localhost/db"),
            ("jwt_secret", "0123456789abcdef0123456789abcdef"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// The reference's defaults, set explicitly, configure exactly what leaving them unset
    /// does (media on in both, so its defaults count too).
    #[test]
    fn documented_defaults_are_the_built_in_ones() {
        let mut unset = base();
        unset.insert("s3_endpoint".into(), "http://127.0.0.1:9000".into());
        unset.insert("media_callback_secret".into(), "m".repeat(32));
        let mut explicit = unset.clone();
        for setting in SETTINGS.iter().filter(|s| !s.default.is_empty()) {
            explicit.insert(setting.key.into(), setting.default.into());
        }
        let built_in = format!("{:?}", Config::from_raw(&unset).unwrap());
        let documented = format!("{:?}", Config::from_raw(&explicit).unwrap());
        assert_eq!(documented, built_in);
    }

    #[test]
    fn the_readme_reference_is_the_generated_table() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .expect("README.md");
        let (start, end) = (
            "<!-- config-reference:start -->\n",
            "<!-- config-reference:end -->",
        );
        let from = readme.find(start).expect("the README marks its reference") + start.len();
        let to = readme[from..].find(end).expect("the reference ends") + from;
        assert_eq!(
            &readme[from..to],
            reference_table(),
            "README.md is stale: replace its table with `guildhall config-reference`"
        );
    }

    #[test]
    fn defaults_apply() {
        let config = Config::from_raw(&base()).unwrap();
        assert_eq!(config.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(config.jwt.access_ttl, Duration::from_secs(900));
        assert_eq!(config.jwt.refresh_ttl, Duration::from_secs(30 * 24 * 3600));
        assert!(config.redis_url.is_none());
        assert!(config.media.storage.is_none(), "no S3 unless configured");
        assert_eq!(config.media.max_bytes, 25 * 1024 * 1024);
        assert_eq!(config.media.allowed_types.len(), 7);
        assert!(config.rate_limits.enabled);
        let limits = &config.rate_limits;
        assert_eq!(
            limits.auth_per_ip,
            Rate {
                burst: 60,
                per_min: 60
            }
        );
        assert_eq!(
            limits.messages,
            Rate {
                burst: 30,
                per_min: 120
            }
        );
        assert_eq!(
            limits.typing,
            Rate {
                burst: 10,
                per_min: 60
            }
        );
        assert_eq!(
            limits.uploads,
            Rate {
                burst: 10,
                per_min: 30
            }
        );
        assert!(!config.auto_migrate);
        assert!(config.jwt.kid.is_none() && config.jwt.previous.is_empty());
    }

    #[test]
    fn previous_jwt_secrets_are_kid_secret_pairs_with_distinct_ids() {
        let old = "0123456789abcdef0123456789abcdef";
        let mut raw = base();
        raw.insert("jwt_kid".into(), "k2".into());
        raw.insert("jwt_previous_secrets".into(), format!("k1={old}, k0={old}"));
        let config = Config::from_raw(&raw).unwrap();
        assert_eq!(config.jwt.kid.as_deref(), Some("k2"));
        let ids: Vec<&str> = config
            .jwt
            .previous
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(ids, ["k1", "k0"]);
        for bad in [
            format!("k2={old}"),
            format!("k1={old},k1={old}"),
            format!("={old}"),
        ] {
            raw.insert("jwt_previous_secrets".into(), bad.clone());
            assert!(Config::from_raw(&raw).is_err(), "{bad}");
        }
    }

    #[test]
    fn each_error_names_its_setting() {
        let cases = [
            ("bind", "not-an-address", "GUILDHALL_BIND"),
            ("database_url", "mysql://x", "GUILDHALL_DATABASE_URL"),
            ("redis_url", "http://x", "GUILDHALL_REDIS_URL"),
            ("jwt_secret", "short", "GUILDHALL_JWT_SECRET"),
            ("ballot_secret", "short", "GUILDHALL_BALLOT_SECRET"),
            ("access_token_ttl_s", "0", "GUILDHALL_ACCESS_TOKEN_TTL_S"),
            ("rate_limits", "maybe", "GUILDHALL_RATE_LIMITS"),
            (
                "rate_limit_messages_burst",
                "0",
                "GUILDHALL_RATE_LIMIT_MESSAGES_BURST",
            ),
            (
                "rate_limit_typing_per_min",
                "-1",
                "GUILDHALL_RATE_LIMIT_TYPING_PER_MIN",
            ),
            ("cors_origins", "example.com", "GUILDHALL_CORS_ORIGINS"),
            ("log_format", "xml", "GUILDHALL_LOG_FORMAT"),
            ("no_such_key", "1", "GUILDHALL_NO_SUCH_KEY"),
            ("s3_bucket", "b", "GUILDHALL_MEDIA_CALLBACK_SECRET"),
            (
                "media_allowed_types",
                "image",
                "GUILDHALL_MEDIA_ALLOWED_TYPES",
            ),
            (
                "media_upload_url_ttl_s",
                "901",
                "GUILDHALL_MEDIA_UPLOAD_URL_TTL_S",
            ),
            (
                "media_abandon_after_s",
                "10",
                "GUILDHALL_MEDIA_ABANDON_AFTER_S",
            ),
            (
                "jwt_previous_secrets",
                "k1=short",
                "GUILDHALL_JWT_PREVIOUS_SECRETS",
            ),
            (
                "jwt_previous_secrets",
                "no-kid-0123456789abcdef0123456789",
                "GUILDHALL_JWT_PREVIOUS_SECRETS",
            ),
        ];
        for (key, value, setting) in cases {
            let mut raw = base();
            raw.insert(key.to_owned(), value.to_owned());
            let err = Config::from_raw(&raw).unwrap_err();
            assert_eq!(err.setting, setting, "{key}={value}");
            assert!(!err.to_string().contains('\n'));
        }
    }

    #[test]
    fn missing_required_settings_are_named() {
        for key in ["database_url", "jwt_secret"] {
            let mut raw = base();
            raw.remove(key);
            let err = Config::from_raw(&raw).unwrap_err();
            assert_eq!(err.setting, env_name(key));
            assert!(err.problem.contains("required"));
        }
    }

    #[test]
    fn env_overrides_file_and_ignores_unrelated_names() {
        let mut raw = base();
        raw.insert("bind".into(), "127.0.0.1:1".into());
        let vars = [
            ("GUILDHALL_BIND".to_owned(), "127.0.0.1:2".to_owned()),
            ("GUILDHALL_TEST_DATABASE_URL".to_owned(), "x".to_owned()),
            ("PATH".to_owned(), "/bin".to_owned()),
        ];
        overlay_env(&mut raw, vars.into_iter());
        assert_eq!(Config::from_raw(&raw).unwrap().bind.port(), 2);
    }

    #[test]
    fn secrets_do_not_print() {
        let config = Config::from_raw(&base()).unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("0123456789abcdef"));
        assert!(!debug.contains("ballots:"));
        assert!(!debug.contains("postgres://u@localhost"));
    }
}
