//! Validated identifiers. Once a `RoomId` or `MemberName` exists, it is known to be within
//! the limits of `docs/protocol.md`, so nothing downstream (room store keys, logs) has to
//! re-check it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest room id, in characters.
pub const ROOM_ID_MAX_CHARS: usize = 128;
/// Longest display name, in characters.
pub const NAME_MAX_CHARS: usize = 64;

/// A room id: 1–128 characters from `[A-Za-z0-9._:@-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoomId(String);

impl RoomId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RoomId {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        if value.is_empty() {
            return Err("roomId must not be empty".into());
        }
        if value.len() > ROOM_ID_MAX_CHARS {
            return Err(format!(
                "roomId is longer than {ROOM_ID_MAX_CHARS} characters"
            ));
        }
        let allowed =
            |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '@' | '-');
        if let Some(bad) = value.chars().find(|c| !allowed(*c)) {
            return Err(format!(
                "roomId may only hold A-Z a-z 0-9 . _ : @ - (found {bad:?})"
            ));
        }
        Ok(RoomId(value))
    }
}

impl From<RoomId> for String {
    fn from(id: RoomId) -> String {
        id.0
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A member's display name: at most 64 characters, no control characters. May be empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MemberName(String);

impl MemberName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for MemberName {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        if value.chars().count() > NAME_MAX_CHARS {
            return Err(format!("name is longer than {NAME_MAX_CHARS} characters"));
        }
        if value.chars().any(char::is_control) {
            return Err("name must not contain control characters".into());
        }
        Ok(MemberName(value))
    }
}

impl From<MemberName> for String {
    fn from(name: MemberName) -> String {
        name.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Room ids accept exactly the documented alphabet and length.
    #[test]
    fn room_id_limits() {
        assert!(RoomId::try_from("a".to_string()).is_ok());
        assert!(RoomId::try_from("Team-1.call_2:eu@x".to_string()).is_ok());
        assert!(RoomId::try_from("x".repeat(128)).is_ok());
        assert!(RoomId::try_from(String::new()).is_err());
        assert!(RoomId::try_from("x".repeat(129)).is_err());
        assert!(RoomId::try_from("a b".to_string()).is_err());
        assert!(RoomId::try_from("room/1".to_string()).is_err());
        assert!(RoomId::try_from("é".to_string()).is_err());
    }

    /// Names count characters, not bytes, and refuse control characters.
    #[test]
    fn name_limits() {
        assert!(MemberName::try_from(String::new()).is_ok());
        assert!(MemberName::try_from("é".repeat(64)).is_ok());
        assert!(MemberName::try_from("é".repeat(65)).is_err());
        assert!(MemberName::try_from("bob\n".to_string()).is_err());
        assert!(MemberName::try_from("a\u{7}".to_string()).is_err());
    }
}
