//! Encoders for what the worker stores: no metadata is ever written (the `image` encoders add
//! none unless asked), and thumbnails are 8-bit in the format `process` documents.

use image::DynamicImage;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;

use crate::detect::Detected;
use crate::error::MediaError;

const JPEG_QUALITY_THUMBNAIL: u8 = 85;

/// Thumbnails are 8 bits per channel whatever the source: a 16-bit thumbnail is twice the bytes
/// for nothing anyone can see.
pub(crate) fn to_8bit(image: DynamicImage) -> DynamicImage {
    match image {
        DynamicImage::ImageLuma8(_)
        | DynamicImage::ImageLumaA8(_)
        | DynamicImage::ImageRgb8(_)
        | DynamicImage::ImageRgba8(_) => image,
        other if other.color().has_alpha() => DynamicImage::ImageRgba8(other.to_rgba8()),
        other => DynamicImage::ImageRgb8(other.to_rgb8()),
    }
}

pub(crate) fn encode_thumbnail(
    detected: Detected,
    thumb: &DynamicImage,
) -> Result<(&'static str, Vec<u8>), MediaError> {
    let as_jpeg = match detected {
        Detected::Jpeg => true,
        Detected::Webp => is_opaque(thumb),
        _ => false,
    };
    if as_jpeg {
        Ok(("image/jpeg", encode_jpeg(thumb, JPEG_QUALITY_THUMBNAIL)?))
    } else {
        Ok(("image/png", encode_png(thumb)?))
    }
}

fn is_opaque(image: &DynamicImage) -> bool {
    match image {
        DynamicImage::ImageLumaA8(buf) => buf.pixels().all(|p| p.0[1] == u8::MAX),
        DynamicImage::ImageRgba8(buf) => buf.pixels().all(|p| p.0[3] == u8::MAX),
        other => !other.color().has_alpha(),
    }
}

pub(crate) fn encode_png(image: &DynamicImage) -> Result<Vec<u8>, MediaError> {
    let mut out = Vec::new();
    image
        .write_with_encoder(PngEncoder::new(&mut out))
        .map_err(|e| MediaError::encode(&e))?;
    Ok(out)
}

pub(crate) fn encode_jpeg(image: &DynamicImage, quality: u8) -> Result<Vec<u8>, MediaError> {
    let mut out = Vec::new();
    let encoder = JpegEncoder::new_with_quality(&mut out, quality);
    let result = match image {
        DynamicImage::ImageLuma8(buf) => buf.write_with_encoder(encoder),
        DynamicImage::ImageRgb8(buf) => buf.write_with_encoder(encoder),
        other => other.to_rgb8().write_with_encoder(encoder),
    };
    result.map_err(|e| MediaError::encode(&e))?;
    Ok(out)
}

pub(crate) fn encode_webp_lossless(image: &DynamicImage) -> Result<Vec<u8>, MediaError> {
    let mut out = Vec::new();
    let encoder = WebPEncoder::new_lossless(&mut out);
    let result = if image.color().has_alpha() {
        image.to_rgba8().write_with_encoder(encoder)
    } else {
        image.to_rgb8().write_with_encoder(encoder)
    };
    result.map_err(|e| MediaError::encode(&e))?;
    Ok(out)
}
