//! The two AWS services media talks to: S3 (presigned PUT/GET, HEAD, DELETE) and Lambda
//! (asynchronous invoke). Nothing here knows about attachments or permissions.

use std::time::Duration;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::presigning::{PresignedRequest, PresigningConfig};

use crate::config::MediaStorage;

/// A request the client makes itself, straight to S3.
#[derive(Debug, Clone)]
pub struct Presigned {
    pub url: String,
    /// Headers the signature covers; the client must send exactly these.
    pub headers: Vec<(String, String)>,
}

impl From<PresignedRequest> for Presigned {
    fn from(request: PresignedRequest) -> Self {
        Self {
            url: request.uri().to_owned(),
            headers: request
                .headers()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Storage {
    s3: aws_sdk_s3::Client,
    /// Signs URLs for the endpoint clients reach (the same client unless a public one is set).
    presigner: aws_sdk_s3::Client,
    lambda: aws_sdk_lambda::Client,
    bucket: String,
    function: String,
}

impl Storage {
    /// Credentials come from the standard AWS chain (`AWS_ACCESS_KEY_ID`, profiles, roles).
    pub async fn connect(config: &MediaStorage) -> Self {
        let shared = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .load()
            .await;
        let s3 = s3_client(&shared, config.s3_endpoint.as_deref());
        let presigner = match &config.s3_public_endpoint {
            Some(public) => s3_client(&shared, Some(public)),
            None => s3.clone(),
        };
        let mut lambda = aws_sdk_lambda::config::Builder::from(&shared);
        if let Some(endpoint) = &config.lambda_endpoint {
            lambda = lambda.endpoint_url(endpoint);
        }
        Self {
            s3,
            presigner,
            lambda: aws_sdk_lambda::Client::from_conf(lambda.build()),
            bucket: config.bucket.clone(),
            function: config.lambda_function.clone(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// A PUT whose signature binds the key, the content type and the exact length.
    pub async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        length: u64,
        ttl: Duration,
    ) -> anyhow::Result<Presigned> {
        let request = self
            .presigner
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(i64::try_from(length)?)
            .presigned(PresigningConfig::expires_in(ttl)?)
            .await?;
        Ok(request.into())
    }

    /// A GET that downloads under `filename` (as an attachment, so a browser never renders it
    /// inline on the storage origin).
    pub async fn presign_get(
        &self,
        key: &str,
        filename: &str,
        ttl: Duration,
    ) -> anyhow::Result<String> {
        let request = self
            .presigner
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .response_content_disposition(content_disposition(filename))
            .presigned(PresigningConfig::expires_in(ttl)?)
            .await?;
        Ok(request.uri().to_owned())
    }

    /// The stored object's size, `None` if there is no object under `key`.
    pub async fn size(&self, key: &str) -> anyhow::Result<Option<u64>> {
        match self
            .s3
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(head) => Ok(Some(head.content_length().unwrap_or(0).max(0) as u64)),
            Err(err)
                if err.as_service_error().is_some_and(
                    aws_sdk_s3::operation::head_object::HeadObjectError::is_not_found,
                ) =>
            {
                Ok(None)
            }
            Err(err) => Err(anyhow::Error::new(err).context("S3 HeadObject")),
        }
    }

    /// Deleting a key that holds nothing succeeds (S3 semantics).
    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        self.s3
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|err| anyhow::Error::new(err).context("S3 DeleteObject"))
    }

    /// Queues `payload` for the media function (InvocationType=Event): returns once Lambda has
    /// accepted it, not when it has run.
    pub async fn invoke(&self, payload: Vec<u8>) -> anyhow::Result<()> {
        self.lambda
            .invoke()
            .function_name(&self.function)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(payload))
            .send()
            .await
            .map(|_| ())
            .map_err(|err| anyhow::Error::new(err).context("Lambda Invoke"))
    }
}

fn s3_client(shared: &aws_config::SdkConfig, endpoint: Option<&str>) -> aws_sdk_s3::Client {
    let mut s3 = aws_sdk_s3::config::Builder::from(shared)
        // Checksums only where S3 requires them: a presigned PUT must not demand one the
        // browser cannot compute, and S3-compatible servers lag behind on the newer ones.
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
    if let Some(endpoint) = endpoint {
        s3 = s3.endpoint_url(endpoint).force_path_style(true);
    }
    aws_sdk_s3::Client::from_conf(s3.build())
}

/// `attachment; filename="<ascii>"; filename*=UTF-8''<percent-encoded>` (RFC 6266).
fn content_disposition(filename: &str) -> String {
    let ascii: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for byte in filename.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::content_disposition;

    #[test]
    fn content_disposition_is_safe_for_any_name() {
        assert_eq!(
            content_disposition("a b.png"),
            "attachment; filename=\"a b.png\"; filename*=UTF-8''a%20b.png"
        );
        let tricky = content_disposition("x\".png\r\nSet-Cookie: y");
        assert!(!tricky.contains('\r') && !tricky.contains('\n'));
        assert!(tricky.starts_with("attachment; filename=\"x_.png__Set-Cookie: y\""));
        assert!(content_disposition("résumé.pdf").ends_with("r%C3%A9sum%C3%A9.pdf"));
    }
}
