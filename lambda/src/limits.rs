//! The limits an upload must stay within. Pixel limits are checked against the header's
//! dimensions before any pixel is decoded (pixel bombs), and the same numbers are handed to the
//! decoder as `image::Limits` so a stream that lies about its size still stops (decompression
//! bombs).

/// Limits for one upload; `Limits::default()` is what production uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest width or height, in pixels.
    pub max_side: u32,
    /// Largest width x height.
    pub max_pixels: u64,
    /// Largest decoded pixel buffer, in bytes (width x height x bytes per pixel); also the
    /// decoder's allocation budget.
    pub max_decoded_bytes: u64,
    /// Largest stored object we read at all, in bytes.
    pub max_input_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_side: 10_000,
            max_pixels: 40_000_000,
            max_decoded_bytes: 256 * 1024 * 1024,
            max_input_bytes: 25 * 1024 * 1024,
        }
    }
}

impl Limits {
    #[cfg(feature = "worker")]
    /// The decoder-side limits: dimensions and the allocation budget.
    pub(crate) fn for_decoder(&self) -> image::Limits {
        let mut limits = image::Limits::default();
        limits.max_image_width = Some(self.max_side);
        limits.max_image_height = Some(self.max_side);
        limits.max_alloc = Some(self.max_decoded_bytes);
        limits
    }

    #[cfg(feature = "worker")]
    /// Only the allocation budget, for reading the header: with the dimension limits set, the
    /// decoder would refuse a pixel bomb itself, with a vaguer message than ours.
    pub(crate) fn for_header(&self) -> image::Limits {
        let mut limits = image::Limits::default();
        limits.max_alloc = Some(self.max_decoded_bytes);
        limits
    }
}

/// A byte count for messages: MiB, whole numbers staying whole ("25 MiB") and others with one
/// decimal ("30.5 MiB"); below one MiB, plain bytes.
pub(crate) fn human_size(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes < MIB {
        format!("{bytes} bytes")
    } else if bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(human_size(25 * 1024 * 1024), "25 MiB");
        assert_eq!(human_size(30 * 1024 * 1024 + 512 * 1024), "30.5 MiB");
        assert_eq!(human_size(1000), "1000 bytes");
    }
}
