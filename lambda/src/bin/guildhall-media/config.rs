//! The worker's configuration, all from environment variables (a Lambda has no config file).

use std::fmt;

use guildhall_media::Limits;

#[derive(Debug)]
pub struct Config {
    /// A non-AWS S3 endpoint (MinIO, s3s-fs); when set, path-style addressing is forced.
    pub s3_endpoint: Option<String>,
    pub s3_region: String,
    /// Where S3-event invocations report; direct invocations carry their own URL.
    pub callback_url: Option<String>,
    pub callback_secret: Secret,
    pub limits: Limits,
}

/// The callback signing secret; never printed.
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("GUILDHALL_MEDIA_CALLBACK_SECRET is not set")]
    MissingSecret,
}

impl Config {
    /// Reads `GUILDHALL_S3_ENDPOINT`, `GUILDHALL_S3_REGION` (else `AWS_REGION`, else
    /// us-east-1), `GUILDHALL_CALLBACK_URL` and `GUILDHALL_MEDIA_CALLBACK_SECRET` through `var`.
    /// Empty values count as unset.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        Ok(Self {
            s3_endpoint: get("GUILDHALL_S3_ENDPOINT"),
            s3_region: get("GUILDHALL_S3_REGION")
                .or_else(|| get("AWS_REGION"))
                .unwrap_or_else(|| "us-east-1".to_owned()),
            callback_url: get("GUILDHALL_CALLBACK_URL"),
            callback_secret: Secret(
                get("GUILDHALL_MEDIA_CALLBACK_SECRET").ok_or(ConfigError::MissingSecret)?,
            ),
            limits: Limits::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_falls_back_and_secret_is_required_and_hidden() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert!(matches!(
            Config::from_env(env(&[])),
            Err(ConfigError::MissingSecret)
        ));
        let config = Config::from_env(env(&[
            ("GUILDHALL_MEDIA_CALLBACK_SECRET", "hunter2"),
            ("AWS_REGION", "eu-west-1"),
            ("GUILDHALL_S3_ENDPOINT", ""),
        ]))
        .unwrap();
        assert_eq!(config.s3_region, "eu-west-1");
        assert_eq!(config.s3_endpoint, None);
        assert!(!format!("{config:?}").contains("hunter2"));
        let config = Config::from_env(env(&[
            ("GUILDHALL_MEDIA_CALLBACK_SECRET", "s"),
            ("AWS_REGION", "eu-west-1"),
            ("GUILDHALL_S3_REGION", "auto"),
        ]))
        .unwrap();
        assert_eq!(config.s3_region, "auto");
    }
}
