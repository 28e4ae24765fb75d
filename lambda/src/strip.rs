//! Lossless metadata removal at the container level, for the formats where a decode/re-encode
//! round trip would hurt: GIF (the `image` crate would flatten an animation to full frames and
//! re-quantise them) and WebP (`image` only encodes lossless WebP, which would turn a 200 KB
//! lossy photo into megabytes, and it cannot encode animation). The encoded pixel data is copied
//! unchanged; every block that is not needed to draw the image is dropped. This is a whitelist:
//! unknown blocks go too.

use crate::error::MediaError;

/// GIF: keeps the header, screen descriptor, colour tables, graphic control extensions, the
/// looping application extension (NETSCAPE2.0 / ANIMEXTS1.0) and the image data. Drops
/// comments, plain-text extensions and every other application extension (XMP, ICC).
pub fn strip_gif(bytes: &[u8]) -> Result<Vec<u8>, MediaError> {
    const MALFORMED: MediaError = MediaError::Malformed("truncated GIF");
    let mut r = Reader { bytes, pos: 0 };
    let mut out = Vec::with_capacity(bytes.len());
    let mut images = 0_usize;

    let header = r.take(13).ok_or(MALFORMED)?;
    if !(header.starts_with(b"GIF87a") || header.starts_with(b"GIF89a")) {
        return Err(MediaError::Malformed("not a GIF"));
    }
    out.extend_from_slice(header);
    let packed = header[10];
    if packed & 0x80 != 0 {
        out.extend_from_slice(r.take(color_table_len(packed)).ok_or(MALFORMED)?);
    }

    // Ending cleanly between blocks without a trailer is accepted, as decoders do.
    while let Some(&introducer) = r.take(1).and_then(|b| b.first()) {
        match introducer {
            0x3B => break,
            0x21 => {
                let start = r.pos - 1;
                let label = *r.take(1).ok_or(MALFORMED)?.first().unwrap_or(&0);
                let first = r.sub_block().ok_or(MALFORMED)?;
                let keep = match label {
                    0xF9 => true,
                    0xFF => first == b"NETSCAPE2.0" || first == b"ANIMEXTS1.0",
                    _ => false,
                };
                if !first.is_empty() {
                    while !r.sub_block().ok_or(MALFORMED)?.is_empty() {}
                }
                if keep {
                    out.extend_from_slice(&bytes[start..r.pos]);
                }
            }
            0x2C => {
                let start = r.pos - 1;
                let descriptor = r.take(9).ok_or(MALFORMED)?;
                let packed = descriptor[8];
                if packed & 0x80 != 0 {
                    r.take(color_table_len(packed)).ok_or(MALFORMED)?;
                }
                r.take(1).ok_or(MALFORMED)?; // LZW minimum code size
                while !r.sub_block().ok_or(MALFORMED)?.is_empty() {}
                out.extend_from_slice(&bytes[start..r.pos]);
                images += 1;
            }
            _ => return Err(MediaError::Malformed("unknown GIF block")),
        }
    }
    if images == 0 {
        return Err(MediaError::Malformed("GIF has no image"));
    }
    out.push(0x3B);
    Ok(out)
}

fn color_table_len(packed: u8) -> usize {
    3 * (1 << ((packed & 0x07) + 1))
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let slice = self.bytes.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(slice)
    }

    /// One GIF data sub-block (length byte, then that many bytes); empty at the terminator.
    fn sub_block(&mut self) -> Option<&'a [u8]> {
        let len = *self.take(1)?.first()?;
        self.take(usize::from(len))
    }
}

/// VP8X flag bits for the chunks we drop.
const VP8X_ICC: u8 = 0x20;
const VP8X_EXIF: u8 = 0x08;
const VP8X_XMP: u8 = 0x04;

/// WebP: keeps the chunks that draw the image (VP8X, VP8, VP8L, ALPH, ANIM, ANMF), drops ICCP,
/// EXIF, XMP and anything unknown, clears their VP8X flags and rewrites the RIFF size.
pub fn strip_webp(bytes: &[u8]) -> Result<Vec<u8>, MediaError> {
    const MALFORMED: MediaError = MediaError::Malformed("truncated WebP");
    if bytes.len() < 12 || !bytes.starts_with(b"RIFF") || &bytes[8..12] != b"WEBP" {
        return Err(MediaError::Malformed("not a WebP"));
    }
    let riff_len = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
    let end = riff_len
        .checked_add(8)
        .filter(|&end| end <= bytes.len())
        .ok_or(MALFORMED)?;

    let mut body = Vec::with_capacity(end);
    body.extend_from_slice(b"WEBP");
    let mut pos = 12;
    while pos < end {
        let header = bytes.get(pos..pos + 8).ok_or(MALFORMED)?;
        let fourcc = &header[..4];
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let padded = len + (len & 1);
        let chunk_end = pos
            .checked_add(8 + padded)
            .filter(|&e| e <= end)
            .ok_or(MALFORMED)?;
        match fourcc {
            b"VP8X" => {
                if len < 10 {
                    return Err(MediaError::Malformed("short VP8X chunk"));
                }
                let at = body.len();
                body.extend_from_slice(&bytes[pos..chunk_end]);
                body[at + 8] &= !(VP8X_ICC | VP8X_EXIF | VP8X_XMP);
            }
            b"VP8 " | b"VP8L" | b"ALPH" | b"ANIM" | b"ANMF" => {
                body.extend_from_slice(&bytes[pos..chunk_end]);
            }
            _ => {}
        }
        pos = chunk_end;
    }

    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_inputs_are_malformed_not_panics() {
        let gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff,\x00";
        for n in 0..gif.len() {
            assert!(strip_gif(&gif[..n]).is_err(), "prefix {n}");
        }
        let webp = b"RIFF\x20\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x08\x00\x00\x00";
        for n in 0..webp.len() {
            assert!(strip_webp(&webp[..n]).is_err(), "prefix {n}");
        }
    }
}
