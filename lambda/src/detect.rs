//! What a file really is, from its first bytes, and whether that is what the uploader declared.
//! The declared content type is the client's word; only the magic bytes count.

use crate::error::MediaError;

/// How much of the file the text check looks at.
const TEXT_SNIFF_BYTES: usize = 8 * 1024;

/// A content type we accept, as detected from the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    Png,
    Jpeg,
    Webp,
    Gif,
    Pdf,
    Zip,
    Text,
}

impl Detected {
    pub fn mime(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Webp => "image/webp",
            Self::Gif => "image/gif",
            Self::Pdf => "application/pdf",
            Self::Zip => "application/zip",
            Self::Text => "text/plain",
        }
    }

    pub fn is_image(self) -> bool {
        matches!(self, Self::Png | Self::Jpeg | Self::Webp | Self::Gif)
    }

    /// The accepted type a declared content type names, if any. Parameters (`; charset=utf-8`)
    /// and case are ignored, and `image/jpg` is taken as the common misspelling it is.
    pub fn from_declared(declared: &str) -> Option<Self> {
        let essence = declared
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        Some(match essence.as_str() {
            "image/png" => Self::Png,
            "image/jpeg" | "image/jpg" => Self::Jpeg,
            "image/webp" => Self::Webp,
            "image/gif" => Self::Gif,
            "application/pdf" => Self::Pdf,
            "application/zip" => Self::Zip,
            "text/plain" => Self::Text,
            _ => return None,
        })
    }

    #[cfg(feature = "worker")]
    pub(crate) fn image_format(self) -> Option<image::ImageFormat> {
        Some(match self {
            Self::Png => image::ImageFormat::Png,
            Self::Jpeg => image::ImageFormat::Jpeg,
            Self::Webp => image::ImageFormat::WebP,
            Self::Gif => image::ImageFormat::Gif,
            Self::Pdf | Self::Zip | Self::Text => return None,
        })
    }
}

/// The real type of `bytes`, from magic numbers; text is valid UTF-8 with no NUL in the first
/// 8 KiB. An empty file is nothing.
pub fn detect(bytes: &[u8]) -> Option<Detected> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(Detected::Png)
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(Detected::Jpeg)
    } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
        Some(Detected::Webp)
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some(Detected::Gif)
    } else if bytes.starts_with(b"%PDF-") {
        Some(Detected::Pdf)
    } else if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        // Local file header, or the end-of-central-directory record of an empty archive.
        Some(Detected::Zip)
    } else if is_text(bytes) {
        Some(Detected::Text)
    } else {
        None
    }
}

fn is_text(bytes: &[u8]) -> bool {
    if bytes.is_empty() {
        return false;
    }
    let head = &bytes[..bytes.len().min(TEXT_SNIFF_BYTES)];
    if head.contains(&0) {
        return false;
    }
    match std::str::from_utf8(head) {
        Ok(_) => true,
        // A multi-byte character cut by the 8 KiB window is not an encoding error.
        Err(e) => e.error_len().is_none() && head.len() < bytes.len(),
    }
}

/// Whether the detected content is what was declared: `Ok` with the detected type, or the reason
/// it is refused ("content is not image/png").
pub fn check_claim(declared: &str, detected: Option<Detected>) -> Result<Detected, MediaError> {
    let Some(claimed) = Detected::from_declared(declared) else {
        return Err(MediaError::UnsupportedType(declared.to_owned()));
    };
    match detected {
        Some(actual) if actual == claimed => Ok(actual),
        _ => Err(MediaError::NotDeclared(claimed.mime().to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_type() {
        assert_eq!(
            detect(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            Some(Detected::Png)
        );
        assert_eq!(
            detect(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 16]),
            Some(Detected::Jpeg)
        );
        assert_eq!(detect(b"RIFF\x1a\0\0\0WEBPVP8L"), Some(Detected::Webp));
        assert_eq!(detect(b"GIF89a\x01\0\x01\0"), Some(Detected::Gif));
        assert_eq!(detect(b"GIF87a\x01\0\x01\0"), Some(Detected::Gif));
        assert_eq!(detect(b"%PDF-1.7\n"), Some(Detected::Pdf));
        assert_eq!(detect(b"PK\x03\x04\x14\0"), Some(Detected::Zip));
        assert_eq!(detect(b"PK\x05\x06\0\0\0\0"), Some(Detected::Zip));
        assert_eq!(detect("hello, wörld\n".as_bytes()), Some(Detected::Text));
    }

    #[test]
    fn rejects_binary_and_empty() {
        assert_eq!(detect(b""), None);
        assert_eq!(detect(b"hello\0world"), None);
        assert_eq!(detect(&[0xC3, 0x28, b'a']), None);
        assert_eq!(detect(b"RIFF\x1a\0\0\0WAVE"), None);
    }

    #[test]
    fn text_cut_mid_character_by_the_sniff_window_is_text() {
        let mut text = vec![b'a'; TEXT_SNIFF_BYTES - 1];
        text.extend_from_slice("é and more".as_bytes());
        assert_eq!(detect(&text), Some(Detected::Text));
        // ...but a truncated character at the real end of the file is not.
        assert_eq!(detect(&[b'a', 0xC3]), None);
    }

    #[test]
    fn text_bytes_declared_png_fail() {
        let err = check_claim("image/png", detect(b"just some text")).unwrap_err();
        assert_eq!(err.to_string(), "content is not image/png");
    }

    #[test]
    fn claims_are_normalised() {
        assert_eq!(
            check_claim("text/plain; charset=utf-8", detect(b"hi")),
            Ok(Detected::Text)
        );
        assert_eq!(
            check_claim("IMAGE/JPG", detect(&[0xFF, 0xD8, 0xFF, 0xDB])),
            Ok(Detected::Jpeg)
        );
    }

    #[test]
    fn other_mismatches_and_unknown_types() {
        let png = detect(b"\x89PNG\r\n\x1a\n");
        assert_eq!(
            check_claim("image/jpeg", png).unwrap_err().to_string(),
            "content is not image/jpeg"
        );
        assert_eq!(
            check_claim("application/pdf", None)
                .unwrap_err()
                .to_string(),
            "content is not application/pdf"
        );
        assert_eq!(
            check_claim("application/x-msdownload", png)
                .unwrap_err()
                .to_string(),
            "content type application/x-msdownload is not supported"
        );
    }
}
