//! Opaque keyset cursors: clients pass back what they were given, never offsets.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::AppError;

pub const DEFAULT_LIMIT: u64 = 50;
pub const MAX_LIMIT: u64 = 100;

/// `?limit=&cursor=` of every cursor-paged list.
#[derive(Debug, Deserialize, IntoParams)]
pub struct PageParams {
    /// 1-100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageParams {
    pub fn limit(&self) -> Result<u64, AppError> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            Some(_) => Err(AppError::field("limit", format!("must be 1-{MAX_LIMIT}"))),
        }
    }

    pub fn cursor(&self) -> Result<Option<Cursor>, AppError> {
        self.cursor.as_deref().map(Cursor::decode).transpose()
    }
}

/// The sort key of the last item of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(pub String);

impl Cursor {
    pub fn encode(key: &str) -> String {
        URL_SAFE_NO_PAD.encode(key.as_bytes())
    }

    pub fn decode(raw: &str) -> Result<Self, AppError> {
        URL_SAFE_NO_PAD
            .decode(raw)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .map(Self)
            .ok_or_else(|| AppError::field("cursor", "not a cursor this server issued"))
    }

    pub fn as_i64(&self) -> Result<i64, AppError> {
        self.0
            .parse()
            .map_err(|_| AppError::field("cursor", "not a cursor this server issued"))
    }

    pub fn as_uuid(&self) -> Result<uuid::Uuid, AppError> {
        self.0
            .parse()
            .map_err(|_| AppError::field("cursor", "not a cursor this server issued"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let raw = Cursor::encode("12345");
        assert_eq!(Cursor::decode(&raw).unwrap().as_i64().unwrap(), 12345);
        assert!(Cursor::decode("***").is_err());
        assert!(
            Cursor::decode(&Cursor::encode("abc"))
                .unwrap()
                .as_i64()
                .is_err()
        );
        let params = PageParams {
            limit: Some(0),
            cursor: None,
        };
        assert!(params.limit().is_err());
    }
}
