//! Voter keys: a keyed hash of (poll, user). A ballot row holding one says "someone has voted
//! here" and lets the server refuse a second vote, without naming the voter to anyone who
//! lacks the server's ballot secret (a database dump, a community admin).

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

#[derive(Clone)]
pub struct BallotKey([u8; 32]);

impl BallotKey {
    /// Derives the key from the configured secret, domain-separated from its other uses.
    pub fn new(secret: &[u8]) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"guildhall ballot key v1")
            .expect("HMAC takes keys of any length");
        mac.update(secret);
        Self(mac.finalize().into_bytes().into())
    }

    /// 32 bytes that are the same for the same (poll, user) and unlinkable without the key.
    pub fn voter(&self, poll: Uuid, user: Uuid) -> Vec<u8> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(poll.as_bytes());
        mac.update(user.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

impl fmt::Debug for BallotKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BallotKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_voter_same_key_other_poll_or_secret_other_key() {
        let (poll, other_poll, user) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let key = BallotKey::new(b"secret one");
        assert_eq!(key.voter(poll, user), key.voter(poll, user));
        assert_eq!(key.voter(poll, user).len(), 32);
        assert_ne!(key.voter(poll, user), key.voter(other_poll, user));
        assert_ne!(
            key.voter(poll, user),
            BallotKey::new(b"secret two").voter(poll, user)
        );
    }
}
