//! Validated identity inputs: parse, don't validate.

use crate::error::FieldError;

/// 3-32 characters of `a-z 0-9 _ . -`, starting with a letter or digit; stored lower-case, so
/// `Alice` and `alice` are the same account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub const MIN: usize = 3;
    pub const MAX: usize = 32;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let name = raw.to_ascii_lowercase();
        let len = name.chars().count();
        if !(Self::MIN..=Self::MAX).contains(&len) {
            return Err(FieldError::new(
                "username",
                format!("must be {}-{} characters long", Self::MIN, Self::MAX),
            ));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(FieldError::new(
                "username",
                "may contain only letters, digits, '_', '.' and '-'",
            ));
        }
        if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(FieldError::new(
                "username",
                "must start with a letter or digit",
            ));
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// 8-128 characters, not only whitespace, not the username.
#[derive(Clone)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password([redacted])")
    }
}

impl Password {
    pub const MIN: usize = 8;
    pub const MAX: usize = 128;

    pub fn parse(raw: &str, username: &Username) -> Result<Self, FieldError> {
        let len = raw.chars().count();
        if !(Self::MIN..=Self::MAX).contains(&len) {
            return Err(FieldError::new(
                "password",
                format!("must be {}-{} characters long", Self::MIN, Self::MAX),
            ));
        }
        if raw.trim().is_empty() {
            return Err(FieldError::new("password", "must not be only whitespace"));
        }
        if raw.eq_ignore_ascii_case(username.as_str()) {
            return Err(FieldError::new("password", "must differ from the username"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// 1-64 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub const MAX: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let name = raw.trim();
        if name.is_empty() || name.chars().count() > Self::MAX {
            return Err(FieldError::new(
                "display_name",
                format!("must be 1-{} characters long", Self::MAX),
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(FieldError::new(
                "display_name",
                "must not contain control characters",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert_eq!(Username::parse("Alice_1").unwrap().as_str(), "alice_1");
        for bad in ["ab", "a b", "_alice", "ålice", &"a".repeat(33), "al!ce"] {
            assert!(Username::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords() {
        let user = Username::parse("alice").unwrap();
        assert!(Password::parse("correct horse", &user).is_ok());
        for bad in ["short", "        ", "ALICE", &"x".repeat(129)] {
            assert!(Password::parse(bad, &user).is_err(), "{bad}");
        }
        assert!(Password::parse("Alice", &user).is_err());
    }

    #[test]
    fn display_names() {
        assert_eq!(
            DisplayName::parse("  Alice  ").unwrap().into_inner(),
            "Alice"
        );
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse("a\u{7}b").is_err());
    }
}
