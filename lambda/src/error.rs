//! Why an upload was refused. The `Display` text of each variant is the `reason` the callback
//! carries to the API (and from there to the uploader), so it says what is wrong with the file in
//! plain words and nothing about our internals.

use crate::limits::human_size;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MediaError {
    #[error("file is empty")]
    Empty,
    #[error("file is {}, more than {}", human_size(*size), human_size(*max))]
    TooLarge { size: u64, max: u64 },
    #[error("file is {actual} bytes, not the declared {declared} bytes")]
    SizeMismatch { actual: u64, declared: u64 },
    #[error("content type {0} is not supported")]
    UnsupportedType(String),
    #[error("content is not {0}")]
    NotDeclared(String),
    #[error("image is {width}x{height} px, more than {max} px per side")]
    TooWide { width: u32, height: u32, max: u32 },
    #[error(
        "image is {width}x{height} px ({:.1} megapixels), more than {} megapixels",
        megapixels(*width, *height),
        *max as f64 / 1_000_000.0
    )]
    TooManyPixels { width: u32, height: u32, max: u64 },
    #[error(
        "image is {width}x{height} px and needs {} decoded, more than {}",
        human_size(*needed),
        human_size(*max)
    )]
    TooMuchMemory {
        width: u32,
        height: u32,
        needed: u64,
        max: u64,
    },
    #[error("image exceeds the decoding limits")]
    DecodeLimits,
    #[error("image could not be decoded: {0}")]
    Decode(String),
    #[error("image is malformed: {0}")]
    Malformed(&'static str),
    #[error("image could not be re-encoded: {0}")]
    Encode(String),
}

fn megapixels(width: u32, height: u32) -> f64 {
    f64::from(width) * f64::from(height) / 1_000_000.0
}

impl MediaError {
    #[cfg(feature = "worker")]
    /// Maps a decoder error: a tripped `image::Limits` is a refusal of its own kind, anything
    /// else is a broken file.
    pub(crate) fn decode(err: &image::ImageError) -> Self {
        match err {
            image::ImageError::Limits(_) => Self::DecodeLimits,
            other => Self::Decode(other.to_string()),
        }
    }

    #[cfg(feature = "worker")]
    pub(crate) fn encode(err: &image::ImageError) -> Self {
        Self::Encode(err.to_string())
    }
}
