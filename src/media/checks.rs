//! What an upload request may declare: a display filename made harmless, an allowed type, a
//! size within the limit. Pure; the storage key never comes from any of it.

use crate::config::MediaConfig;
use crate::error::AppError;

const MAX_FILENAME_CHARS: usize = 255;

/// Characters that reorder or hide text (bidi overrides and isolates, zero-width joiners, BOM):
/// they make `evil\u{202e}gnp.exe` display as `evilexe.png`.
fn is_invisible_trick(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// The last path segment, without control or invisible characters, trimmed.
pub fn filename(raw: &str) -> Result<String, AppError> {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .filter(|&c| !c.is_control() && !is_invisible_trick(c))
        .collect();
    let cleaned = cleaned.trim().to_owned();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        return Err(AppError::field("filename", "must name a file"));
    }
    if cleaned.chars().count() > MAX_FILENAME_CHARS {
        return Err(AppError::field(
            "filename",
            format!("must be at most {MAX_FILENAME_CHARS} characters"),
        ));
    }
    Ok(cleaned)
}

/// The bare media type (parameters dropped, lower case) if the server allows it.
pub fn content_type(config: &MediaConfig, raw: &str) -> Result<String, AppError> {
    let bare = raw
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if config.allowed_types.contains(&bare) {
        return Ok(bare);
    }
    Err(AppError::field(
        "content_type",
        format!(
            "{bare:?} is not allowed here; allowed: {}",
            config.allowed_types.join(", ")
        ),
    ))
}

pub fn size(config: &MediaConfig, size: u64) -> Result<i64, AppError> {
    if size == 0 {
        return Err(AppError::field("size", "must be at least 1 byte"));
    }
    if size > config.max_bytes {
        return Err(AppError::PayloadTooLarge(format!(
            "size {size} is more than the limit of {} bytes",
            config.max_bytes
        )));
    }
    Ok(i64::try_from(size).expect("the limit fits in i64"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::Config;

    fn media() -> MediaConfig {
        let raw: BTreeMap<String, String> = [
            ("database_url", "postgres://u@localhost/db"),
            ("jwt_secret", "0123456789abcdef0123456789abcdef"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        Config::from_raw(&raw).unwrap().media
    }

    #[test]
    fn filenames_lose_paths_and_invisible_characters() {
        let cases = [
            ("photo.png", "photo.png"),
            ("../../etc/passwd", "passwd"),
            ("..\\..\\boot.ini", "boot.ini"),
            ("a\0b.png", "ab.png"),
            ("evil\u{202e}gnp.exe", "evilgnp.exe"),
            ("zero\u{200b}width.pdf", "zerowidth.pdf"),
            ("  spaced name.txt  ", "spaced name.txt"),
            ("line\r\nbreak.txt", "linebreak.txt"),
            ("résumé.pdf", "résumé.pdf"),
        ];
        for (raw, want) in cases {
            assert_eq!(filename(raw).unwrap(), want, "{raw:?}");
        }
        for bad in ["", "dir/", "..", "/..", "\u{202e}", " \0 "] {
            assert!(filename(bad).is_err(), "{bad:?}");
        }
        assert!(filename(&"x".repeat(256)).is_err());
    }

    #[test]
    fn content_types_come_from_the_allow_list() {
        let config = media();
        assert_eq!(content_type(&config, "IMAGE/PNG").unwrap(), "image/png");
        assert_eq!(
            content_type(&config, "text/plain; charset=utf-8").unwrap(),
            "text/plain"
        );
        for bad in [
            "image/svg+xml",
            "text/html",
            "application/octet-stream",
            "",
            "image/png/x",
        ] {
            assert!(content_type(&config, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sizes_are_positive_and_within_the_limit() {
        let config = media();
        assert!(size(&config, 0).is_err());
        assert_eq!(
            size(&config, config.max_bytes).unwrap(),
            config.max_bytes as i64
        );
        assert!(matches!(
            size(&config, config.max_bytes + 1),
            Err(AppError::PayloadTooLarge(_))
        ));
    }
}
