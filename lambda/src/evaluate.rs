//! One upload, start to verdict: size, detection, claim, processing. Returns the callback body
//! and the objects the worker must write, so the binary only does I/O.

use uuid::Uuid;

use crate::contract::{CallbackBody, Status, VariantInfo};
use crate::detect::{Detected, check_claim, detect};
use crate::error::MediaError;
use crate::limits::Limits;
use crate::process::process_image;

/// What the worker knows about the upload before reading it.
#[derive(Debug, Clone)]
pub struct Job<'a> {
    pub attachment_id: Uuid,
    pub key: &'a str,
    pub declared_content_type: &'a str,
    pub declared_size: u64,
    /// The stored object already is our output (it carries the worker's metadata marker), for
    /// instance when the API invokes again: the original is not rewritten (a JPEG would lose
    /// quality at each pass) and its size no longer matches the declared one.
    pub already_processed: bool,
}

/// An object to PUT.
#[derive(Debug, Clone)]
pub struct ObjectWrite {
    pub key: String,
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Evaluation {
    pub callback: CallbackBody,
    /// In the order to write them: the variants, then the stripped original (same key) if it is
    /// rewritten. The original goes last because its marker tells a retry that the variants
    /// are stored too.
    pub writes: Vec<ObjectWrite>,
}

/// The S3 key of a variant of the object at `key`.
pub fn variant_key(key: &str, name: &str) -> String {
    format!("{key}.{name}")
}

/// Refuses by the declared size alone, before the object is read.
pub fn check_declared_size(declared: u64, limits: &Limits) -> Result<(), MediaError> {
    if declared > limits.max_input_bytes {
        return Err(MediaError::TooLarge {
            size: declared,
            max: limits.max_input_bytes,
        });
    }
    Ok(())
}

pub fn evaluate(job: &Job<'_>, bytes: &[u8], limits: &Limits) -> Evaluation {
    let detected = detect(bytes);
    evaluate_detected(job, bytes, detected, limits).unwrap_or_else(|err| Evaluation {
        callback: CallbackBody::failed(
            job.attachment_id,
            err.to_string(),
            detected.map(Detected::mime),
        ),
        writes: Vec::new(),
    })
}

fn evaluate_detected(
    job: &Job<'_>,
    bytes: &[u8],
    detected: Option<Detected>,
    limits: &Limits,
) -> Result<Evaluation, MediaError> {
    let actual = bytes.len() as u64;
    if actual == 0 {
        return Err(MediaError::Empty);
    }
    if actual > limits.max_input_bytes {
        return Err(MediaError::TooLarge {
            size: actual,
            max: limits.max_input_bytes,
        });
    }
    if !job.already_processed && actual != job.declared_size {
        return Err(MediaError::SizeMismatch {
            actual,
            declared: job.declared_size,
        });
    }
    let detected = check_claim(job.declared_content_type, detected)?;

    let mut callback = CallbackBody {
        attachment_id: job.attachment_id,
        status: Status::Ready,
        reason: None,
        content_type: Some(detected.mime().to_owned()),
        size: Some(actual),
        width: None,
        height: None,
        blurhash: None,
        variants: Vec::new(),
    };
    if !detected.is_image() {
        return Ok(Evaluation {
            callback,
            writes: Vec::new(),
        });
    }

    let processed = process_image(bytes, detected, limits)?;
    let mut writes = Vec::with_capacity(processed.variants.len() + 1);
    callback.width = Some(processed.width);
    callback.height = Some(processed.height);
    callback.blurhash = Some(processed.blurhash);
    for variant in processed.variants {
        let key = variant_key(job.key, variant.name);
        callback.variants.push(VariantInfo {
            name: variant.name.to_owned(),
            key: key.clone(),
            content_type: variant.content_type.to_owned(),
            width: variant.width,
            height: variant.height,
            size: variant.bytes.len() as u64,
        });
        writes.push(ObjectWrite {
            key,
            content_type: variant.content_type,
            bytes: variant.bytes,
        });
    }
    if !job.already_processed {
        callback.size = Some(processed.original.len() as u64);
        writes.push(ObjectWrite {
            key: job.key.to_owned(),
            content_type: detected.mime(),
            bytes: processed.original,
        });
    }
    Ok(Evaluation { callback, writes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    fn job(declared: &'static str, size: usize) -> Job<'static> {
        Job {
            attachment_id: Uuid::nil(),
            key: "attachments/a",
            declared_content_type: declared,
            declared_size: size as u64,
            already_processed: false,
        }
    }

    #[test]
    fn text_passes_without_writes() {
        let bytes = b"hello";
        let eval = evaluate(&job("text/plain", bytes.len()), bytes, &Limits::default());
        assert_eq!(eval.callback.status, Status::Ready);
        assert_eq!(eval.callback.content_type.as_deref(), Some("text/plain"));
        assert_eq!(eval.callback.size, Some(5));
        assert!(eval.callback.variants.is_empty());
        assert!(eval.writes.is_empty());
    }

    #[test]
    fn fake_png_fails_with_the_detected_type() {
        let bytes = b"not a png at all";
        let eval = evaluate(&job("image/png", bytes.len()), bytes, &Limits::default());
        assert_eq!(eval.callback.status, Status::Failed);
        assert_eq!(
            eval.callback.reason.as_deref(),
            Some("content is not image/png")
        );
        assert_eq!(eval.callback.content_type.as_deref(), Some("text/plain"));
        assert_eq!(eval.callback.size, None);
        assert!(eval.writes.is_empty());
    }

    #[test]
    fn size_checks() {
        let eval = evaluate(&job("text/plain", 3), b"hello", &Limits::default());
        assert_eq!(
            eval.callback.reason.as_deref(),
            Some("file is 5 bytes, not the declared 3 bytes")
        );
        let eval = evaluate(&job("text/plain", 0), b"", &Limits::default());
        assert_eq!(eval.callback.reason.as_deref(), Some("file is empty"));
        let small = Limits {
            max_input_bytes: 4,
            ..Limits::default()
        };
        let eval = evaluate(&job("text/plain", 5), b"hello", &small);
        assert_eq!(
            eval.callback.reason.as_deref(),
            Some("file is 5 bytes, more than 4 bytes")
        );
        assert_eq!(
            check_declared_size(30 * 1024 * 1024, &Limits::default())
                .unwrap_err()
                .to_string(),
            "file is 30 MiB, more than 25 MiB"
        );
    }

    #[test]
    fn image_writes_variants_then_the_original() {
        let png = fixtures::png(600, 300);
        let eval = evaluate(&job("image/png", png.len()), &png, &Limits::default());
        let cb = &eval.callback;
        assert_eq!(cb.status, Status::Ready, "{:?}", cb.reason);
        assert_eq!((cb.width, cb.height), (Some(600), Some(300)));
        assert_eq!(cb.variants.len(), 1);
        assert_eq!(cb.variants[0].key, "attachments/a.thumb_256");
        let keys: Vec<_> = eval.writes.iter().map(|w| w.key.as_str()).collect();
        assert_eq!(keys, ["attachments/a.thumb_256", "attachments/a"]);
        assert_eq!(cb.variants[0].size, eval.writes[0].bytes.len() as u64);
        assert_eq!(cb.size, Some(eval.writes[1].bytes.len() as u64));
        assert_eq!(eval.writes[1].content_type, "image/png");
    }

    #[test]
    fn already_processed_original_is_not_rewritten() {
        let png = fixtures::png(600, 300);
        let mut job = job("image/png", 1);
        job.already_processed = true;
        let eval = evaluate(&job, &png, &Limits::default());
        assert_eq!(eval.callback.status, Status::Ready);
        assert_eq!(eval.callback.size, Some(png.len() as u64));
        let keys: Vec<_> = eval.writes.iter().map(|w| w.key.as_str()).collect();
        assert_eq!(keys, ["attachments/a.thumb_256"]);
    }
}
