//! One invocation: find the object, read it within the limits, let the library judge it, write
//! what it produced, report to the API.
//!
//! Rewriting the original under its own key fires another ObjectCreated event. Every object the
//! worker writes carries the metadata marker `guildhall-processed`; an S3 event for a marked
//! object whose ETag is the one in the event is that echo and is ignored. Variants are never
//! mistaken for uploads: their keys (`{key}.thumb_256`) do not end in a uuid. The original is
//! written last, so the marker means "variants are stored too"; a retried invocation that finds
//! it regenerates the variants and reports again without touching the original.

use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::operation::head_object::HeadObjectError;
use aws_sdk_s3::primitives::ByteStream;
use guildhall_media::contract::{DirectInvocation, S3EventRecord};
use guildhall_media::evaluate::check_declared_size;
use guildhall_media::{CallbackBody, Invocation, Job, Limits, MediaError, evaluate};
use lambda_runtime::Error;
use serde::Serialize;
use uuid::Uuid;

use crate::callback::Notifier;
use crate::config::Config;
use crate::error::WorkerError;

const MARKER_KEY: &str = "guildhall-processed";
const MARKER_VALUE: &str = "v1";

pub struct Worker {
    s3: aws_sdk_s3::Client,
    notifier: Notifier,
    /// For S3-event invocations, which do not say where to report.
    callback_url: Option<String>,
    limits: Limits,
}

/// The function's result: the callback body of a direct invocation, or one per processed record
/// of an S3 event (records that were skipped have none).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Response {
    One(CallbackBody),
    Many(Vec<CallbackBody>),
}

/// The object to process and what is claimed about it.
struct Upload<'a> {
    bucket: &'a str,
    key: &'a str,
    attachment_id: Uuid,
    declared_content_type: &'a str,
    declared_size: u64,
}

enum Fetched {
    Missing,
    TooLarge(u64),
    Object { bytes: Vec<u8>, marked: bool },
}

impl Worker {
    pub async fn build(config: Config) -> Result<Self, Error> {
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(Region::new(config.s3_region.clone()))
            .load()
            .await;
        let mut s3 = aws_sdk_s3::config::Builder::from(&shared);
        if let Some(endpoint) = &config.s3_endpoint {
            // S3-compatible stores: path-style URLs, and only the checksums S3 itself requires.
            s3 = s3
                .endpoint_url(endpoint)
                .force_path_style(true)
                .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        }
        Ok(Self {
            s3: aws_sdk_s3::Client::from_conf(s3.build()),
            notifier: Notifier::new(config.callback_secret)?,
            callback_url: config.callback_url,
            limits: config.limits,
        })
    }

    pub async fn handle(&self, invocation: Invocation) -> Result<Response, WorkerError> {
        match invocation {
            Invocation::Direct(direct) => self.direct(direct).await.map(Response::One),
            Invocation::S3(event) => {
                let mut bodies = Vec::new();
                for record in event.records {
                    if let Some(body) = self.record(record).await? {
                        bodies.push(body);
                    }
                }
                Ok(Response::Many(bodies))
            }
        }
    }

    async fn direct(&self, direct: DirectInvocation) -> Result<CallbackBody, WorkerError> {
        let upload = Upload {
            bucket: &direct.bucket,
            key: &direct.key,
            attachment_id: direct.attachment_id,
            declared_content_type: &direct.declared_content_type,
            declared_size: direct.declared_size,
        };
        let body = self.process(&upload).await?;
        self.notifier.send(&direct.callback_url, &body).await?;
        Ok(body)
    }

    async fn record(&self, record: S3EventRecord) -> Result<Option<CallbackBody>, WorkerError> {
        let key = record.key();
        let bucket = record.s3.bucket.name.as_str();
        if !record.is_object_created() {
            tracing::info!(event = %record.event_name, %key, "not an upload; skipped");
            return Ok(None);
        }
        let Some(attachment_id) = record.attachment_id() else {
            tracing::info!(%key, "key is not an attachment (a variant?); skipped");
            return Ok(None);
        };
        let head = match self.s3.head_object().bucket(bucket).key(&key).send().await {
            Ok(head) => head,
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(HeadObjectError::is_not_found) =>
            {
                tracing::info!(%key, "object is gone; skipped");
                return Ok(None);
            }
            Err(err) => return Err(s3_error("HeadObject", &key, &err)),
        };
        if is_marked(head.metadata()) && same_etag(record.s3.object.e_tag.as_deref(), head.e_tag())
        {
            tracing::info!(%key, "our own rewrite of the original; skipped");
            return Ok(None);
        }
        let callback_url = self
            .callback_url
            .as_deref()
            .ok_or(WorkerError::NoCallbackUrl)?;
        let declared_size = record
            .s3
            .object
            .size
            .or_else(|| head.content_length().and_then(|n| u64::try_from(n).ok()))
            .unwrap_or(0);
        let upload = Upload {
            bucket,
            key: &key,
            attachment_id,
            declared_content_type: head.content_type().unwrap_or("application/octet-stream"),
            declared_size,
        };
        let body = self.process(&upload).await?;
        self.notifier.send(callback_url, &body).await?;
        Ok(Some(body))
    }

    /// Reads, judges and stores; returns the callback body. Errors are for what a retry may fix
    /// (S3 unreachable); anything wrong with the file is a `failed` body.
    async fn process(&self, upload: &Upload<'_>) -> Result<CallbackBody, WorkerError> {
        let failed = |reason: String| CallbackBody::failed(upload.attachment_id, reason, None);
        if let Err(err) = check_declared_size(upload.declared_size, &self.limits) {
            return Ok(failed(err.to_string()));
        }
        let (bytes, marked) = match self.fetch(upload.bucket, upload.key).await? {
            Fetched::Missing => return Ok(failed("object not found".to_owned())),
            Fetched::TooLarge(size) => {
                let max = self.limits.max_input_bytes;
                return Ok(failed(MediaError::TooLarge { size, max }.to_string()));
            }
            Fetched::Object { bytes, marked } => (bytes, marked),
        };

        // Decoding and encoding are CPU-bound: off the async threads, awaited here.
        let (id, size, limits) = (upload.attachment_id, upload.declared_size, self.limits);
        let key = upload.key.to_owned();
        let declared = upload.declared_content_type.to_owned();
        let evaluation = tokio::task::spawn_blocking(move || {
            let job = Job {
                attachment_id: id,
                key: &key,
                declared_content_type: &declared,
                declared_size: size,
                already_processed: marked,
            };
            evaluate(&job, &bytes, &limits)
        })
        .await?;

        // In the library's order: variants, then the original (the marker's commit point).
        let writes = evaluation.writes;
        for write in writes {
            self.s3
                .put_object()
                .bucket(upload.bucket)
                .key(&write.key)
                .content_type(write.content_type)
                .metadata(MARKER_KEY, MARKER_VALUE)
                .body(ByteStream::from(write.bytes))
                .send()
                .await
                .map_err(|err| s3_error("PutObject", &write.key, &err))?;
        }
        tracing::info!(
            attachment_id = %upload.attachment_id,
            key = upload.key,
            status = ?evaluation.callback.status,
            reason = evaluation.callback.reason.as_deref().unwrap_or(""),
            "processed"
        );
        Ok(evaluation.callback)
    }

    async fn fetch(&self, bucket: &str, key: &str) -> Result<Fetched, WorkerError> {
        let object = match self.s3.get_object().bucket(bucket).key(key).send().await {
            Ok(object) => object,
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(GetObjectError::is_no_such_key) =>
            {
                return Ok(Fetched::Missing);
            }
            Err(err) => return Err(s3_error("GetObject", key, &err)),
        };
        let max = self.limits.max_input_bytes;
        let length = object.content_length().and_then(|n| u64::try_from(n).ok());
        if let Some(length) = length.filter(|&n| n > max) {
            return Ok(Fetched::TooLarge(length));
        }
        let marked = is_marked(object.metadata());
        let mut body = object.body;
        let mut bytes = Vec::with_capacity(length.unwrap_or(0) as usize);
        while let Some(chunk) = body.try_next().await.map_err(|err| WorkerError::S3 {
            operation: "GetObject",
            key: key.to_owned(),
            detail: format!("reading the body: {err}"),
        })? {
            // A length header can be missing or wrong; the limit holds on what arrives.
            if (bytes.len() + chunk.len()) as u64 > max {
                return Ok(Fetched::TooLarge((bytes.len() + chunk.len()) as u64));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Fetched::Object { bytes, marked })
    }
}

fn is_marked(metadata: Option<&std::collections::HashMap<String, String>>) -> bool {
    metadata.and_then(|m| m.get(MARKER_KEY)).is_some()
}

/// Event ETags come bare, HeadObject's quoted. A missing event ETag counts as the same object:
/// when in doubt, do not process a marked object again.
fn same_etag(event: Option<&str>, head: Option<&str>) -> bool {
    match (event, head) {
        (Some(event), Some(head)) => event.trim_matches('"') == head.trim_matches('"'),
        _ => true,
    }
}

fn s3_error<E, R>(
    operation: &'static str,
    key: &str,
    err: &aws_sdk_s3::error::SdkError<E, R>,
) -> WorkerError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    WorkerError::S3 {
        operation,
        key: key.to_owned(),
        detail: DisplayErrorContext(err).to_string(),
    }
}
