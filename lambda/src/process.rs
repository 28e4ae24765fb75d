//! Decode an image within the limits, rewrite the original without metadata, make thumbnails and
//! a blurhash.
//!
//! What "the original without metadata" is, per format:
//! - PNG: re-encoded from the decoded pixels; no text, eXIf, iCCP or other ancillary chunks.
//! - JPEG: re-encoded at quality 90; no APP1 (EXIF/XMP), APP2 (ICC) or comment segments.
//! - GIF: the container is rewritten without comment and application extensions (see
//!   [`crate::strip`]); animation is kept, pixel data is copied as is.
//! - WebP: likewise, EXIF/XMP/ICCP chunks dropped and the bitstream copied; except when the
//!   EXIF asked for a rotation, which would be lost with it, so then the rotated pixels are
//!   re-encoded as lossless WebP (the only WebP encoder `image` has).
//!
//! EXIF orientation is applied to the pixels before anything is encoded, so a portrait phone
//! photo stays portrait once its EXIF is gone; width and height are reported after rotation.
//! ICC profiles are dropped with the rest (the pixels are then shown as sRGB).
//!
//! Thumbnails fit in a 256 and a 1024 px square, keep the aspect ratio, and exist only for images
//! larger than that square. They are PNG for PNG and GIF sources (GIF: the first frame), JPEG
//! (quality 85) for JPEG sources, and for WebP sources JPEG when the thumbnail is opaque and PNG
//! when it has transparency.

use std::io::Cursor;

use image::imageops::FilterType;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader};

use crate::detect::Detected;
use crate::encode::{encode_jpeg, encode_png, encode_thumbnail, encode_webp_lossless, to_8bit};
use crate::error::MediaError;
use crate::limits::Limits;
use crate::strip::{strip_gif, strip_webp};

/// Thumbnail names (the callback's `name` and the S3 key suffix) and the square they fit in.
pub const THUMBNAILS: [(&str, u32); 2] = [("thumb_256", 256), ("thumb_1024", 1024)];

const JPEG_QUALITY_ORIGINAL: u8 = 90;
const BLURHASH_COMPONENTS: (u32, u32) = (4, 3);
/// Blurhash is computed on a downscale this size: its cost is per pixel and it keeps no detail.
const BLURHASH_SOURCE_SIDE: u32 = 32;

/// A processed image: what to store and what to report.
#[derive(Debug, Clone)]
pub struct Processed {
    /// The original, without metadata, in its own format and content type.
    pub original: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub blurhash: String,
    /// Smallest first; empty for images no larger than the smallest thumbnail.
    pub variants: Vec<Variant>,
}

#[derive(Debug, Clone)]
pub struct Variant {
    pub name: &'static str,
    pub content_type: &'static str,
    pub width: u32,
    pub height: u32,
    pub bytes: Vec<u8>,
}

/// Refuses an image by its header's dimensions, before any pixel is decoded.
pub fn check_dimensions(
    width: u32,
    height: u32,
    decoded_bytes: u64,
    limits: &Limits,
) -> Result<(), MediaError> {
    if width == 0 || height == 0 {
        return Err(MediaError::Malformed("image has no pixels"));
    }
    if width > limits.max_side || height > limits.max_side {
        return Err(MediaError::TooWide {
            width,
            height,
            max: limits.max_side,
        });
    }
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(MediaError::TooManyPixels {
            width,
            height,
            max: limits.max_pixels,
        });
    }
    if decoded_bytes > limits.max_decoded_bytes {
        return Err(MediaError::TooMuchMemory {
            width,
            height,
            needed: decoded_bytes,
            max: limits.max_decoded_bytes,
        });
    }
    Ok(())
}

/// Decodes `bytes` (already detected as `detected`) within `limits` and produces the stripped
/// original, thumbnails and blurhash.
pub fn process_image(
    bytes: &[u8],
    detected: Detected,
    limits: &Limits,
) -> Result<Processed, MediaError> {
    let format = detected
        .image_format()
        .ok_or_else(|| MediaError::UnsupportedType(detected.mime().to_owned()))?;

    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits.for_header());
    let mut decoder = reader.into_decoder().map_err(|e| MediaError::decode(&e))?;
    let (header_width, header_height) = decoder.dimensions();
    check_dimensions(header_width, header_height, decoder.total_bytes(), limits)?;
    decoder
        .set_limits(limits.for_decoder())
        .map_err(|e| MediaError::decode(&e))?;
    // A broken EXIF block is no reason to refuse the image; it is about to be dropped anyway.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| MediaError::decode(&e))?;
    image.apply_orientation(orientation);

    let original = match detected {
        Detected::Png => encode_png(&image)?,
        Detected::Jpeg => encode_jpeg(&image, JPEG_QUALITY_ORIGINAL)?,
        Detected::Gif => strip_gif(bytes)?,
        Detected::Webp if orientation == Orientation::NoTransforms => strip_webp(bytes)?,
        Detected::Webp => encode_webp_lossless(&image)?,
        Detected::Pdf | Detected::Zip | Detected::Text => unreachable!("not an image format"),
    };

    // Largest first, each from the previous one: cheaper than resizing the original twice.
    let (width, height) = (image.width(), image.height());
    let mut variants = Vec::new();
    let mut smallest: Option<DynamicImage> = None;
    for &(name, side) in THUMBNAILS.iter().rev() {
        if width.max(height) <= side {
            continue;
        }
        let source = smallest.as_ref().unwrap_or(&image);
        let thumb = to_8bit(source.resize(side, side, FilterType::CatmullRom));
        let (content_type, encoded) = encode_thumbnail(detected, &thumb)?;
        variants.push(Variant {
            name,
            content_type,
            width: thumb.width(),
            height: thumb.height(),
            bytes: encoded,
        });
        smallest = Some(thumb);
    }
    variants.reverse();

    let blurhash = blurhash_of(smallest.as_ref().unwrap_or(&image))?;
    Ok(Processed {
        original,
        width,
        height,
        blurhash,
        variants,
    })
}

fn blurhash_of(image: &DynamicImage) -> Result<String, MediaError> {
    let small = image
        .thumbnail(BLURHASH_SOURCE_SIDE, BLURHASH_SOURCE_SIDE)
        .to_rgba8();
    let (x, y) = BLURHASH_COMPONENTS;
    blurhash::encode(x, y, small.width(), small.height(), small.as_raw())
        .map_err(|e| MediaError::Encode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use image::{AnimationDecoder, GenericImageView};

    use super::*;
    use crate::fixtures::{self, SECRET, contains};

    fn process(bytes: &[u8], detected: Detected) -> Result<Processed, MediaError> {
        process_image(bytes, detected, &Limits::default())
    }

    #[test]
    fn png_text_and_exif_chunks_are_removed() {
        let png = fixtures::png_with_chunks(
            &fixtures::png(300, 200),
            &[
                fixtures::png_chunk(b"tEXt", &[b"Comment\0".as_slice(), SECRET].concat()),
                fixtures::png_chunk(b"eXIf", &fixtures::tiff_with_orientation(1)),
            ],
        );
        assert!(contains(&png, b"tEXt") && contains(&png, b"eXIf"));
        let out = process(&png, Detected::Png).unwrap();
        for needle in [b"tEXt".as_slice(), b"eXIf", b"Exif", SECRET] {
            assert!(!contains(&out.original, needle));
        }
        assert_eq!(fixtures::decode(&out.original).dimensions(), (300, 200));
        assert_eq!((out.width, out.height), (300, 200));
    }

    #[test]
    fn jpeg_exif_is_removed_and_its_rotation_applied() {
        let jpeg = fixtures::jpeg_with_exif(&fixtures::jpeg(40, 20), 6);
        assert!(contains(&jpeg, b"Exif"));
        let out = process(&jpeg, Detected::Jpeg).unwrap();
        assert!(!contains(&out.original, b"Exif"));
        assert!(!contains(&out.original, SECRET));
        assert!(out.original.starts_with(&[0xFF, 0xD8, 0xFF]));
        // Orientation 6 is "rotate 90° clockwise to display": portrait now, with no EXIF needed.
        assert_eq!((out.width, out.height), (20, 40));
        assert_eq!(fixtures::decode(&out.original).dimensions(), (20, 40));
    }

    #[test]
    fn gif_metadata_is_removed_and_the_animation_kept() {
        let gif = fixtures::animated_gif_with_metadata(300, 150);
        assert!(contains(&gif, SECRET));
        let out = process(&gif, Detected::Gif).unwrap();
        assert!(!contains(&out.original, SECRET));
        assert!(!contains(&out.original, b"XMP DataXMP"));
        assert!(contains(&out.original, b"NETSCAPE2.0"));
        let decoder =
            image::codecs::gif::GifDecoder::new(std::io::Cursor::new(&out.original)).unwrap();
        assert_eq!(decoder.into_frames().collect_frames().unwrap().len(), 2);
        assert_eq!((out.width, out.height), (300, 150));
        assert_eq!(out.variants.len(), 1);
        assert_eq!(out.variants[0].content_type, "image/png");
    }

    #[test]
    fn webp_exif_chunk_is_dropped_losslessly() {
        let webp = fixtures::webp_with_exif(64, 32, 1);
        let out = process(&webp, Detected::Webp).unwrap();
        assert!(!contains(&out.original, b"EXIF"));
        assert!(!contains(&out.original, SECRET));
        assert_eq!(out.original[20] & 0x08, 0, "VP8X EXIF flag cleared");
        let exif_len = fixtures::tiff_with_orientation(1).len();
        assert_eq!(
            out.original.len(),
            webp.len() - (8 + exif_len + exif_len % 2)
        );
        assert_eq!(fixtures::decode(&out.original).dimensions(), (64, 32));
    }

    #[test]
    fn rotated_webp_is_re_encoded_upright() {
        let webp = fixtures::webp_with_exif(64, 32, 6);
        let out = process(&webp, Detected::Webp).unwrap();
        assert!(!contains(&out.original, SECRET));
        assert_eq!((out.width, out.height), (32, 64));
        assert_eq!(fixtures::decode(&out.original).dimensions(), (32, 64));
    }

    #[test]
    fn pixel_bomb_is_refused_from_the_header() {
        let bomb = fixtures::png_header_only(20_000, 20_000);
        assert!(bomb.len() < 100);
        let err = process(&bomb, Detected::Png).unwrap_err();
        assert_eq!(
            err.to_string(),
            "image is 20000x20000 px, more than 10000 px per side"
        );
    }

    #[test]
    fn too_many_megapixels_is_refused_from_the_header() {
        let err = process(&fixtures::png_header_only(9_000, 9_000), Detected::Png).unwrap_err();
        assert_eq!(
            err.to_string(),
            "image is 9000x9000 px (81.0 megapixels), more than 40 megapixels"
        );
    }

    #[test]
    fn decoded_size_is_limited() {
        let limits = Limits {
            max_decoded_bytes: 1024,
            ..Limits::default()
        };
        let err = process_image(&fixtures::png(100, 100), Detected::Png, &limits).unwrap_err();
        assert_eq!(
            err.to_string(),
            "image is 100x100 px and needs 30000 bytes decoded, more than 1024 bytes"
        );
        let decoder_limits = Limits::default().for_decoder();
        assert_eq!(decoder_limits.max_alloc, Some(256 * 1024 * 1024));
        assert_eq!(decoder_limits.max_image_width, Some(10_000));
    }

    #[test]
    fn truncated_image_fails_to_decode() {
        let png = fixtures::png(50, 50);
        let err = process(&png[..png.len() / 2], Detected::Png).unwrap_err();
        assert!(
            err.to_string().starts_with("image could not be decoded"),
            "{err}"
        );
    }

    #[test]
    fn thumbnails_fit_their_square_and_keep_the_aspect_ratio() {
        let out = process(&fixtures::jpeg(2000, 1000), Detected::Jpeg).unwrap();
        let sizes: Vec<_> = out
            .variants
            .iter()
            .map(|v| (v.name, v.content_type, v.width, v.height))
            .collect();
        assert_eq!(
            sizes,
            [
                ("thumb_256", "image/jpeg", 256, 128),
                ("thumb_1024", "image/jpeg", 1024, 512)
            ]
        );
        for v in &out.variants {
            assert_eq!(fixtures::decode(&v.bytes).dimensions(), (v.width, v.height));
        }

        let out = process(&fixtures::png(500, 1000), Detected::Png).unwrap();
        let sizes: Vec<_> = out
            .variants
            .iter()
            .map(|v| (v.name, v.content_type, v.width, v.height))
            .collect();
        assert_eq!(sizes, [("thumb_256", "image/png", 128, 256)]);
    }

    #[test]
    fn small_images_get_no_thumbnails() {
        let out = process(&fixtures::png(256, 100), Detected::Png).unwrap();
        assert!(out.variants.is_empty());
    }

    #[test]
    fn blurhash_is_4x3() {
        let out = process(&fixtures::png(300, 200), Detected::Png).unwrap();
        // 1 size flag + 1 max AC + 4 DC + 2 per AC component (4x3 - 1).
        assert_eq!(out.blurhash.len(), 1 + 1 + 4 + 2 * 11);
        // Size flag (4 - 1) + (3 - 1) * 9 = 21, base83 'L'.
        assert!(out.blurhash.starts_with('L'), "{}", out.blurhash);
    }
}
