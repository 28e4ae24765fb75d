//! Argon2id password hashing, run on the blocking pool and bounded so a login storm cannot
//! take all memory (each hash holds ~19 MiB).

use std::sync::Arc;

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use tokio::sync::Semaphore;

#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// Verified against when the username is unknown, so both cases take the same time.
    dummy_hash: Arc<str>,
}

impl Passwords {
    pub async fn new() -> anyhow::Result<Self> {
        let permits = Arc::new(Semaphore::new(
            std::thread::available_parallelism().map_or(2, |n| n.get() * 2),
        ));
        let dummy =
            tokio::task::spawn_blocking(|| hash_blocking("dummy password for timing")).await??;
        Ok(Self {
            permits,
            dummy_hash: dummy.into(),
        })
    }

    pub async fn hash(&self, password: &str) -> anyhow::Result<String> {
        let _permit = self.permits.acquire().await?;
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || hash_blocking(&password)).await?
    }

    /// `hash = None` verifies against the dummy hash and returns false.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> anyhow::Result<bool> {
        let _permit = self.permits.acquire().await?;
        let known = hash.is_some();
        let hash = hash.map_or_else(|| self.dummy_hash.to_string(), str::to_owned);
        let password = password.to_owned();
        let matches =
            tokio::task::spawn_blocking(move || verify_blocking(&password, &hash)).await??;
        Ok(known && matches)
    }
}

fn hash_blocking(password: &str) -> anyhow::Result<String> {
    let hash: Result<PasswordHash, _> = Argon2::default().hash_password(password.as_bytes());
    hash.map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("argon2 hash: {e}"))
}

fn verify_blocking(password: &str, hash: &str) -> anyhow::Result<bool> {
    let parsed =
        PasswordHash::new(hash).map_err(|e| anyhow::anyhow!("stored hash unreadable: {e}"))?;
    // Parameters come from the stored PHC string, so hashes made with older settings still verify.
    Ok(Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok())
}
