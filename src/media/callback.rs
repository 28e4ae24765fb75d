//! Authenticating the media worker's callback: `X-Guildhall-Signature` must be the HMAC (shared
//! secret) of `"{X-Guildhall-Timestamp}.{body}"`, the timestamp within five minutes of now.
//! Replays inside that window are caught by the stored signatures (see the service).

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::AppError;

/// How far a callback's timestamp may be from our clock; signatures are kept longer than this.
pub const WINDOW_S: i64 = 300;

pub const TIMESTAMP_HEADER: &str = "x-guildhall-timestamp";
pub const SIGNATURE_HEADER: &str = "x-guildhall-signature";

/// The signature, once checked; it is the replay-guard key.
pub fn verify(
    secret: &[u8],
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<String, AppError> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| AppError::Unauthorized(format!("missing {name} header")))
    };
    let timestamp: i64 = header(TIMESTAMP_HEADER)?
        .parse()
        .map_err(|_| AppError::Unauthorized(format!("{TIMESTAMP_HEADER} is not a unix time")))?;
    if (now - timestamp).abs() > WINDOW_S {
        return Err(AppError::Unauthorized(format!(
            "{TIMESTAMP_HEADER} is more than {WINDOW_S} s from the server's clock"
        )));
    }
    let signature = header(SIGNATURE_HEADER)?;
    let given = signature
        .strip_prefix("v1=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or_else(|| AppError::Unauthorized("signature is not v1=<hex>".to_owned()))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    // verify_slice compares in constant time.
    mac.verify_slice(&given)
        .map_err(|_| AppError::Unauthorized("bad signature".to_owned()))?;
    Ok(signature.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn headers(ts: i64, signature: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(TIMESTAMP_HEADER, ts.to_string().parse().unwrap());
        map.insert(SIGNATURE_HEADER, signature.parse().unwrap());
        map
    }

    #[test]
    fn accepts_what_the_worker_signs() {
        let body = br#"{"attachment_id":"x"}"#;
        let signature = guildhall_media::sign(SECRET, 1_700_000_000, body);
        let got = verify(
            SECRET,
            &headers(1_700_000_000, &signature),
            body,
            1_700_000_100,
        );
        assert_eq!(got.unwrap(), signature);
    }

    #[test]
    fn refuses_forgeries_and_stale_timestamps() {
        let body = br#"{"attachment_id":"x"}"#;
        let ts: i64 = 1_700_000_000;
        let good = guildhall_media::sign(SECRET, ts as u64, body);
        let other_key =
            guildhall_media::sign(b"another secret entirely, 32 bytes", ts as u64, body);
        let cases = [
            (headers(ts, &other_key), body.as_slice(), ts),
            (
                headers(ts, &good),
                br#"{"attachment_id":"y"}"#.as_slice(),
                ts,
            ),
            (headers(ts + 1, &good), body.as_slice(), ts),
            (headers(ts, &good), body.as_slice(), ts + WINDOW_S + 1),
            (headers(ts, &good), body.as_slice(), ts - WINDOW_S - 1),
            (headers(ts, "v1=zz"), body.as_slice(), ts),
            (headers(ts, &good[3..]), body.as_slice(), ts),
            (HeaderMap::new(), body.as_slice(), ts),
        ];
        for (i, (headers, body, now)) in cases.into_iter().enumerate() {
            let err = verify(SECRET, &headers, body, now).unwrap_err();
            assert!(
                matches!(err, AppError::Unauthorized(_)),
                "case {i}: {err:?}"
            );
        }
    }
}
