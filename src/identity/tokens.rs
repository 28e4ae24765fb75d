//! Access tokens (HS256 JWT, algorithm pinned, every spec claim required) and opaque refresh
//! tokens (random, only their SHA-256 is stored).

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::config::JwtConfig;

/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_S: u64 = 5;

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub iat: u64,
    /// Optional per RFC 7519; validated when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    pub exp: u64,
    pub iss: String,
    pub aud: String,
    /// The login session (refresh-token family) this token belongs to.
    #[serde(default)]
    pub sid: Option<Uuid>,
}

pub struct TokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    kid: Option<String>,
    /// Keys of earlier secrets by `kid` (rotation): verify only.
    previous: Vec<(String, DecodingKey)>,
    validation: Validation,
    issuer: String,
    audience: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    /// Per user: access tokens issued (`iat`) before this unix second are refused (sessions
    /// revoked by an operator). Only cutoffs younger than the access TTL matter; older ones
    /// are pruned, since every token they would refuse has expired anyway.
    cutoffs: RwLock<HashMap<Uuid, u64>>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("access token expired")]
    Expired,
    #[error("access token not valid yet")]
    NotYetValid,
    #[error("access token invalid")]
    Invalid,
    #[error("access token revoked")]
    Revoked,
}

impl TokenService {
    pub fn new(config: &JwtConfig) -> Self {
        let secret = config.secret.expose().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_S;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            kid: config.kid.clone(),
            previous: config
                .previous
                .iter()
                .map(|(kid, secret)| {
                    (
                        kid.clone(),
                        DecodingKey::from_secret(secret.expose().as_bytes()),
                    )
                })
                .collect(),
            validation,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            access_ttl: config.access_ttl,
            refresh_ttl: config.refresh_ttl,
            cutoffs: RwLock::default(),
        }
    }

    /// Refuses `user`'s access tokens issued before `not_before` (unix seconds) from now on.
    pub fn set_cutoff(&self, user: Uuid, not_before: u64) {
        let oldest_useful = jsonwebtoken::get_current_timestamp()
            .saturating_sub(self.access_ttl.as_secs() + LEEWAY_S);
        let mut cutoffs = self.cutoffs.write().expect("cutoffs lock");
        cutoffs.retain(|_, at| *at >= oldest_useful);
        if not_before >= oldest_useful {
            let at = cutoffs.entry(user).or_default();
            *at = (*at).max(not_before);
        }
    }

    /// Forgets every cutoff (before reloading them all).
    pub fn clear_cutoffs(&self) {
        self.cutoffs.write().expect("cutoffs lock").clear();
    }

    /// Signs an access token for `user_id` in session `session_id`.
    pub fn issue_access(&self, user_id: Uuid, session_id: Uuid) -> anyhow::Result<String> {
        let now = jsonwebtoken::get_current_timestamp();
        // A login in the second its user's sessions were revoked (the cutoff is the next whole
        // second) must not be refused: its token counts as issued at the cutoff.
        let cutoff = self
            .cutoffs
            .read()
            .expect("cutoffs lock")
            .get(&user_id)
            .copied();
        let claims = Claims {
            sub: user_id,
            iat: cutoff.map_or(now, |at| at.max(now)),
            nbf: Some(now),
            exp: now + self.access_ttl.as_secs(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sid: Some(session_id),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid.clone_from(&self.kid);
        Ok(jsonwebtoken::encode(&header, &claims, &self.encoding)?)
    }

    /// A `kid` naming an earlier secret is checked with that one only (config keeps earlier
    /// ids apart from the current one); any other token with the current secret (its `kid` is
    /// optional), and a token without `kid` also with the earlier ones, which signed before key
    /// ids were set.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let kid = jsonwebtoken::decode_header(token)
            .map_err(|_| TokenError::Invalid)?
            .kid;
        let keys: Vec<&DecodingKey> = match kid {
            Some(kid) => {
                let earlier = self.previous.iter().find(|(k, _)| *k == kid);
                vec![earlier.map_or(&self.decoding, |(_, key)| key)]
            }
            None => std::iter::once(&self.decoding)
                .chain(self.previous.iter().map(|(_, key)| key))
                .collect(),
        };
        let mut outcome = Err(TokenError::Invalid);
        for key in keys {
            outcome = jsonwebtoken::decode::<Claims>(token, key, &self.validation)
                .map(|data| data.claims)
                .map_err(|err| match err.kind() {
                    ErrorKind::ExpiredSignature => TokenError::Expired,
                    ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                    _ => TokenError::Invalid,
                });
            if !matches!(outcome, Err(TokenError::Invalid)) {
                break;
            }
        }
        let claims = outcome?;
        let cutoff = self
            .cutoffs
            .read()
            .expect("cutoffs lock")
            .get(&claims.sub)
            .copied();
        match cutoff {
            Some(not_before) if claims.iat < not_before => Err(TokenError::Revoked),
            _ => Ok(claims),
        }
    }
}

/// A fresh opaque refresh token: 256 random bits, base64url.
pub fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn hash_refresh_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn service(secret: &str) -> TokenService {
        TokenService::new(&JwtConfig {
            secret: Secret::new(secret.to_owned()),
            kid: None,
            previous: Vec::new(),
            issuer: "iss".into(),
            audience: "aud".into(),
            access_ttl: Duration::from_secs(60),
            refresh_ttl: Duration::from_secs(600),
        })
    }

    #[test]
    fn round_trip_and_foreign_key_rejected() {
        let ours = service("0123456789abcdef0123456789abcdef");
        let user = Uuid::now_v7();
        let token = ours.issue_access(user, Uuid::now_v7()).unwrap();
        assert_eq!(ours.verify(&token).unwrap().sub, user);
        let theirs = service("fedcba9876543210fedcba9876543210");
        assert!(matches!(theirs.verify(&token), Err(TokenError::Invalid)));
    }

    const OLD: &str = "0123456789abcdef0123456789abcdef";
    const NEW: &str = "fedcba9876543210fedcba9876543210";

    fn rotated(secret: &str, kid: Option<&str>, previous: &[(&str, &str)]) -> TokenService {
        TokenService::new(&JwtConfig {
            secret: Secret::new(secret.to_owned()),
            kid: kid.map(str::to_owned),
            previous: previous
                .iter()
                .map(|(k, s)| ((*k).to_owned(), Secret::new((*s).to_owned())))
                .collect(),
            issuer: "iss".into(),
            audience: "aud".into(),
            access_ttl: Duration::from_secs(60),
            refresh_ttl: Duration::from_secs(600),
        })
    }

    /// `claims` of a fresh token of `service`, signed again with `secret` under `kid`.
    fn resigned(service: &TokenService, secret: &str, kid: Option<&str>) -> String {
        let token = service
            .issue_access(Uuid::now_v7(), Uuid::now_v7())
            .unwrap();
        let claims = service.verify(&token).unwrap();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn after_a_rotation_old_tokens_stay_valid_and_new_ones_carry_the_new_kid() {
        let before = rotated(OLD, Some("k1"), &[]);
        let after = rotated(NEW, Some("k2"), &[("k1", OLD)]);
        let old_token = before.issue_access(Uuid::now_v7(), Uuid::now_v7()).unwrap();
        assert!(
            after.verify(&old_token).is_ok(),
            "signed before the rotation"
        );
        let new_token = after.issue_access(Uuid::now_v7(), Uuid::now_v7()).unwrap();
        let header = jsonwebtoken::decode_header(&new_token).unwrap();
        assert_eq!(header.kid.as_deref(), Some("k2"));
        assert!(after.verify(&new_token).is_ok());
        assert!(matches!(
            before.verify(&new_token),
            Err(TokenError::Invalid)
        ));
        // Tokens from before key ids were set: no kid, the earlier secret.
        assert!(after.verify(&resigned(&after, OLD, None)).is_ok());
        // A kid names one key: the wrong secret under it fails.
        for (secret, kid) in [(OLD, Some("k2")), (NEW, Some("k1")), (OLD, Some("k9"))] {
            let token = resigned(&after, secret, kid);
            assert!(
                matches!(after.verify(&token), Err(TokenError::Invalid)),
                "{kid:?}"
            );
        }
        // Once the earlier secret is dropped, its tokens are refused.
        let later = rotated(NEW, Some("k2"), &[]);
        assert!(matches!(later.verify(&old_token), Err(TokenError::Invalid)));
    }

    #[test]
    fn a_cutoff_refuses_earlier_tokens_of_that_user_only() {
        let tokens = service(OLD);
        let (user, other) = (Uuid::now_v7(), Uuid::now_v7());
        let token = tokens.issue_access(user, Uuid::now_v7()).unwrap();
        let others = tokens.issue_access(other, Uuid::now_v7()).unwrap();
        tokens.set_cutoff(user, jsonwebtoken::get_current_timestamp() + 1);
        assert!(matches!(tokens.verify(&token), Err(TokenError::Revoked)));
        assert!(tokens.verify(&others).is_ok());
        let after = tokens.issue_access(user, Uuid::now_v7()).unwrap();
        assert!(tokens.verify(&after).is_ok(), "issued after the cutoff");
        tokens.clear_cutoffs();
        assert!(tokens.verify(&token).is_ok());
    }

    #[test]
    fn refresh_tokens_are_unique_and_hashed() {
        let (a, b) = (new_refresh_token(), new_refresh_token());
        assert_ne!(a, b);
        assert_eq!(hash_refresh_token(&a).len(), 32);
        assert_ne!(hash_refresh_token(&a), hash_refresh_token(&b));
    }
}
