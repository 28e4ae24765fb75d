//! The wire contract: what invokes the worker and what it POSTs back to the API. Field names and
//! order are the API's; change them only together with the API's callback handler.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One invocation: either the API calling the function directly, or S3 notifying an upload.
/// Untagged: a direct payload has `attachment_id`, an S3 event has `Records`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Invocation {
    Direct(DirectInvocation),
    S3(S3Event),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DirectInvocation {
    pub attachment_id: Uuid,
    pub bucket: String,
    pub key: String,
    pub declared_content_type: String,
    pub declared_size: u64,
    pub callback_url: String,
}

/// The parts of an S3 event notification the worker reads.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct S3Event {
    #[serde(rename = "Records")]
    pub records: Vec<S3EventRecord>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct S3EventRecord {
    #[serde(rename = "eventName")]
    pub event_name: String,
    pub s3: S3Entity,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct S3Entity {
    pub bucket: S3Bucket,
    pub object: S3Object,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct S3Bucket {
    pub name: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct S3Object {
    /// URL-encoded, as S3 sends it (`+` for space); see [`S3EventRecord::key`].
    pub key: String,
    #[serde(default)]
    pub size: Option<u64>,
    /// Tells our own rewrite's event (same ETag as the stored object) from a retried one.
    #[serde(rename = "eTag", default)]
    pub e_tag: Option<String>,
}

impl S3EventRecord {
    pub fn is_object_created(&self) -> bool {
        self.event_name.starts_with("ObjectCreated:")
    }

    /// The object key, decoded.
    pub fn key(&self) -> String {
        decode_event_key(&self.s3.object.key)
    }

    /// The attachment an upload belongs to: the key's last path segment, when it is a uuid. Our
    /// own thumbnails (`{key}.thumb_256`) are not, so their events are ignored.
    pub fn attachment_id(&self) -> Option<Uuid> {
        attachment_id_of_key(&self.key())
    }
}

pub fn attachment_id_of_key(key: &str) -> Option<Uuid> {
    Uuid::try_parse(key.rsplit('/').next()?).ok()
}

/// S3 event keys are form-encoded: `+` is a space and other bytes are `%XX`.
pub fn decode_event_key(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (bytes.get(i + 1), bytes.get(i + 2)) {
                (Some(&hi), Some(&lo)) if hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit() => {
                    out.push(hex_value(hi) << 4 | hex_value(lo));
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ready,
    Failed,
}

/// The body POSTed to the callback URL, and the function's result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CallbackBody {
    pub attachment_id: Uuid,
    pub status: Status,
    /// Why it failed; `None` when ready.
    pub reason: Option<String>,
    /// The detected content type (also when the check failed, if anything was detected).
    pub content_type: Option<String>,
    /// Bytes stored under the attachment's key after processing; `None` when failed.
    pub size: Option<u64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub blurhash: Option<String>,
    pub variants: Vec<VariantInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VariantInfo {
    pub name: String,
    pub key: String,
    pub content_type: String,
    pub width: u32,
    pub height: u32,
    pub size: u64,
}

impl CallbackBody {
    pub fn failed(attachment_id: Uuid, reason: String, content_type: Option<&str>) -> Self {
        Self {
            attachment_id,
            status: Status::Failed,
            reason: Some(reason),
            content_type: content_type.map(str::to_owned),
            size: None,
            width: None,
            height: None,
            blurhash: None,
            variants: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0190f3c2-7a4e-7cc1-9a3b-1f2e3d4c5b6a";

    #[test]
    fn parses_a_direct_invocation() {
        let json = format!(
            r#"{{"attachment_id":"{ID}","bucket":"b","key":"attachments/{ID}",
               "declared_content_type":"image/png","declared_size":42,
               "callback_url":"http://127.0.0.1:8080/internal/media/callback"}}"#
        );
        let Invocation::Direct(d) = serde_json::from_str(&json).unwrap() else {
            panic!("not direct")
        };
        assert_eq!(d.attachment_id.to_string(), ID);
        assert_eq!(d.declared_size, 42);
    }

    #[test]
    fn parses_an_s3_event() {
        let json = format!(
            r#"{{"Records":[{{"eventVersion":"2.1","eventSource":"aws:s3",
               "eventName":"ObjectCreated:Put","s3":{{"bucket":{{"name":"uploads"}},
               "object":{{"key":"attachments/{ID}","size":1024,"eTag":"x"}}}}}}]}}"#
        );
        let Invocation::S3(event) = serde_json::from_str(&json).unwrap() else {
            panic!("not s3")
        };
        let record = &event.records[0];
        assert!(record.is_object_created());
        assert_eq!(record.s3.bucket.name, "uploads");
        assert_eq!(record.s3.object.size, Some(1024));
        assert_eq!(record.s3.object.e_tag.as_deref(), Some("x"));
        assert_eq!(record.attachment_id().unwrap().to_string(), ID);
    }

    #[test]
    fn thumbnail_keys_are_not_attachments() {
        assert_eq!(
            attachment_id_of_key(&format!("attachments/{ID}.thumb_256")),
            None
        );
        assert!(attachment_id_of_key(ID).is_some());
    }

    #[test]
    fn event_keys_are_decoded() {
        assert_eq!(decode_event_key("a+b%2Fc%3d"), "a b/c=");
        assert_eq!(decode_event_key("100%"), "100%");
        assert_eq!(decode_event_key("%zz%4"), "%zz%4");
    }

    #[test]
    fn callback_body_has_the_exact_shape() {
        let body = CallbackBody {
            attachment_id: ID.parse().unwrap(),
            status: Status::Ready,
            reason: None,
            content_type: Some("image/png".into()),
            size: Some(10),
            width: Some(300),
            height: Some(200),
            blurhash: Some("LEHV6n".into()),
            variants: vec![VariantInfo {
                name: "thumb_256".into(),
                key: "k.thumb_256".into(),
                content_type: "image/png".into(),
                width: 256,
                height: 171,
                size: 5,
            }],
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            format!(
                r#"{{"attachment_id":"{ID}","status":"ready","reason":null,"content_type":"image/png","size":10,"width":300,"height":200,"blurhash":"LEHV6n","variants":[{{"name":"thumb_256","key":"k.thumb_256","content_type":"image/png","width":256,"height":171,"size":5}}]}}"#
            )
        );
        let failed =
            CallbackBody::failed(ID.parse().unwrap(), "content is not image/png".into(), None);
        assert_eq!(
            serde_json::to_string(&failed).unwrap(),
            format!(
                r#"{{"attachment_id":"{ID}","status":"failed","reason":"content is not image/png","content_type":null,"size":null,"width":null,"height":null,"blurhash":null,"variants":[]}}"#
            )
        );
    }
}
