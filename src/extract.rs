//! Request extractors whose rejections are `AppError`s (problem+json naming the fields), plus
//! the client IP. Kernel: imports only `error` and `config`-free std/axum items.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::error::{AppError, FieldError};

/// JSON body extractor: 415 without a JSON content type, 413 past the body limit,
/// 400 for malformed JSON, 422 naming the field for a missing field or a wrong type.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !has_json_content_type(&req) {
            return Err(AppError::UnsupportedMediaType(
                "expected Content-Type: application/json".to_owned(),
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        parse_json(&bytes).map(Json)
    }
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn has_json_content_type(req: &Request) -> bool {
    let Some(value) = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

fn body_rejection(rejection: BytesRejection) -> AppError {
    if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        AppError::PayloadTooLarge("request body exceeds the size limit".to_owned())
    } else {
        AppError::BadRequest {
            detail: rejection.body_text(),
            fields: vec![FieldError::new("body", "could not be read")],
        }
    }
}

/// Parses JSON, reporting the path of the first offending field.
///
/// JSON has one number type: `3.0` is the integer 3 to JSON Schema (and so to the OpenAPI
/// document) and to clients whose numbers are all floats, but serde refuses it for an integer
/// field. A body refused for that alone is read again with integral floats as integers; the
/// strict parse stays the only one on the common path.
///
/// Every request body is a JSON object. serde reads a struct from an array too (fields by
/// position), so a well-formed array is refused here rather than taken field by field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    if bytes.trim_ascii_start().starts_with(b"[")
        && serde_json::from_slice::<serde_json::Value>(bytes).is_ok()
    {
        return Err(AppError::field("body", "must be a JSON object"));
    }
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize(deserializer) {
        Ok(value) => Ok(value),
        Err(err)
            if err
                .inner()
                .to_string()
                .starts_with("invalid type: floating point") =>
        {
            let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
                return Err(json_error(err, bytes));
            };
            integral_floats_as_integers(&mut value);
            serde_path_to_error::deserialize(value).map_err(|err| json_error(err, bytes))
        }
        Err(err) => Err(json_error(err, bytes)),
    }
}

/// `2.0` -> `2` wherever a float has no fraction and fits an `i64` / `u64`.
fn integral_floats_as_integers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(number) if number.is_f64() => {
            let float = number.as_f64().unwrap_or(f64::NAN);
            // 2^63 and 2^64 are exact as f64; the bounds keep the casts lossless.
            if float.fract() == 0.0 {
                if (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&float) {
                    *number = (float as i64).into();
                } else if (0.0..18_446_744_073_709_551_616.0).contains(&float) {
                    *number = (float as u64).into();
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        Value::Object(fields) => fields.values_mut().for_each(integral_floats_as_integers),
        _ => {}
    }
}

/// 422 for JSON of the wrong shape, 400 for bytes that are not JSON. serde stops at the first
/// problem, so a wrong field before a syntax error would read as 422: a shape error is only
/// reported once the whole body is known to be JSON (found by the `json_bodies` fuzz target).
fn json_error(err: serde_path_to_error::Error<serde_json::Error>, bytes: &[u8]) -> AppError {
    let path = err.path().to_string();
    let inner = err.into_inner();
    let field = if path == "." { "body".to_owned() } else { path };
    let message = inner.to_string();
    if inner.classify() != serde_json::error::Category::Data {
        return malformed(field, message);
    }
    if let Err(syntax) = serde_json::from_slice::<serde_json::Value>(bytes) {
        return malformed("body".to_owned(), syntax.to_string());
    }
    // serde reports a missing field at its parent; name the field itself.
    let field = missing_field(&message).map_or(field.clone(), |name| join_path(&field, name));
    AppError::Validation(vec![FieldError::new(field, message)])
}

fn malformed(field: String, message: String) -> AppError {
    AppError::BadRequest {
        detail: format!("malformed JSON: {message}"),
        fields: vec![FieldError::new(field, message)],
    }
}

fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}

fn join_path(parent: &str, name: &str) -> String {
    if parent == "body" {
        name.to_owned()
    } else {
        format!("{parent}.{name}")
    }
}

/// Path parameters; a value of the wrong shape (e.g. not a UUID) is a 422 naming the parameter.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(path) => Ok(Path(path.0)),
            Err(rejection) => {
                let field = rejected_param(&rejection, parts, state).await;
                Err(AppError::field(&field, rejection.body_text()))
            }
        }
    }
}

/// The parameter a path rejection is about; a single-value `Path<Uuid>` error carries no key,
/// so the route's only parameter is named then.
async fn rejected_param<S: Send + Sync>(
    rejection: &PathRejection,
    parts: &mut Parts,
    state: &S,
) -> String {
    use axum::extract::path::ErrorKind;
    if let PathRejection::FailedToDeserializePathParams(e) = rejection
        && let ErrorKind::ParseErrorAtKey { key, .. } | ErrorKind::InvalidUtf8InPathParam { key } =
            e.kind()
    {
        return key.clone();
    }
    match axum::extract::RawPathParams::from_request_parts(parts, state).await {
        Ok(params) if params.iter().count() == 1 => params
            .iter()
            .next()
            .map(|(k, _)| k.to_owned())
            .unwrap_or_default(),
        _ => "path".to_owned(),
    }
}

/// Query string; bad values are a 422 naming `query`.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|rejection: QueryRejection| AppError::field("query", rejection.body_text()))
    }
}

/// Whether `X-Forwarded-For` is trusted; inserted as a request extension by the app.
#[derive(Debug, Clone, Copy)]
pub struct TrustForwardedFor(pub bool);

/// The client's IP: the socket peer, or the last `X-Forwarded-For` hop when behind a trusted proxy.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let trusted = parts
            .extensions
            .get::<TrustForwardedFor>()
            .is_some_and(|t| t.0);
        if trusted {
            let forwarded = parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit(',').next())
                .and_then(|ip| ip.trim().parse().ok());
            if let Some(ip) = forwarded {
                return Ok(Self(ip));
            }
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(Self(peer.unwrap_or(IpAddr::from([127, 0, 0, 1]))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        inner: Inner,
    }
    #[derive(Debug, serde::Deserialize)]
    struct Inner {
        size: u32,
    }

    fn fields(err: AppError) -> (u16, Vec<String>) {
        let problem = err.problem();
        (
            problem.status,
            problem.errors.into_iter().map(|f| f.field).collect(),
        )
    }

    #[test]
    fn names_missing_and_mistyped_fields() {
        assert_eq!(
            fields(parse_json::<Body>(br#"{"inner":{"size":1}}"#).unwrap_err()),
            (422, vec!["name".into()])
        );
        assert_eq!(
            fields(parse_json::<Body>(br#"{"name":"a","inner":{"size":"x"}}"#).unwrap_err()),
            (422, vec!["inner.size".into()])
        );
        assert_eq!(
            fields(parse_json::<Body>(br#"{"name":"a","inner":{}}"#).unwrap_err()),
            (422, vec!["inner.size".into()])
        );
    }

    #[test]
    fn integral_floats_read_as_integers() {
        let body: Body = parse_json(br#"{"name":"a","inner":{"size":3.0}}"#).unwrap();
        assert_eq!(body.inner.size, 3);
        assert_eq!(
            fields(parse_json::<Body>(br#"{"name":"a","inner":{"size":3.5}}"#).unwrap_err()),
            (422, vec!["inner.size".into()])
        );
        assert_eq!(
            fields(parse_json::<Body>(br#"{"name":"a","inner":{"size":-1.0}}"#).unwrap_err()),
            (422, vec!["inner.size".into()])
        );
    }

    #[test]
    fn arrays_are_not_objects() {
        assert_eq!(
            fields(parse_json::<Body>(br#"["a", {"size": 1}]"#).unwrap_err()),
            (422, vec!["body".into()])
        );
        assert_eq!(parse_json::<Body>(b"[").unwrap_err().problem().status, 400);
    }

    #[test]
    fn malformed_json_is_400() {
        assert_eq!(
            parse_json::<Body>(b"{\"name\":")
                .unwrap_err()
                .problem()
                .status,
            400
        );
        assert_eq!(parse_json::<Body>(b"").unwrap_err().problem().status, 400);
    }

    #[test]
    fn a_shape_error_before_a_syntax_error_is_still_400() {
        let err = parse_json::<Body>(b"{\"name\": 5, \"inner\": {\"size\": 1}, \"x\": \"\x01\"}")
            .unwrap_err();
        assert_eq!(fields(err), (400, vec!["body".into()]));
        let err = parse_json::<Body>(b"[\"\xff\"]").unwrap_err();
        assert_eq!(err.problem().status, 400);
    }
}
