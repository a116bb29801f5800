//! Node mail: messages addressed to one node, for resumable sessions.
//!
//! Events for a resumable session go to the node that holds it, not to every node through
//! the adapter: `SPUBLISH` on that node's own channel tells the sender how many nodes were
//! listening, so an event for a session whose node just crashed or exited (nobody listening)
//! is kept for the session instead of vanishing. The node receiving it delivers it if it
//! still holds the session, and keeps or forwards it otherwise.

use serde::{Deserialize, Serialize};

/// One message to a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mail {
    /// Deliver a server event (JSON payload) to a session this node holds.
    Deliver {
        peer: String,
        event: String,
        payload: String,
    },
    /// A session this node held was resumed on another node: forget it, silently.
    Moved { peer: String },
}

impl Mail {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

/// The sharded pub/sub channel of `node` (its own hash tag, its own slot).
pub fn mail_channel(node: &str) -> String {
    format!("sb-mail#{{{node}}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_round_trips() {
        let mail = Mail::Deliver {
            peer: "p".into(),
            event: "#rtcio:message".into(),
            payload: r#"{"data":{"sdp":"v=0\r\n"}}"#.into(),
        };
        assert_eq!(Mail::decode(&mail.encode()), Some(mail));
        assert_eq!(Mail::decode(b"junk"), None);
        assert_eq!(mail_channel("n1"), "sb-mail#{n1}");
    }
}
