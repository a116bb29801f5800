//! Any text a client can put in a socket.io EVENT packet, through everything the server does
//! with it before touching state: the cheap name peek (size and rate refusals), the full
//! decode and validation, and the name shown back in refusals.
//!
//! Run: `cargo +nightly fuzz run decode` in `fuzz/` (see docs/security.md).

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_protocol::inbound::{SHOWN_EVENT_NAME_CHARS, peek_event_name, shown_event_name};
use switchboard_protocol::{ClientEvent, ErrorEvent};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let peeked = peek_event_name(text);
    let decoded = ClientEvent::decode(text);
    // The peek never contradicts the decoder when both read a name.
    assert!(peeked.is_empty() || decoded.name.is_empty() || peeked == decoded.name);
    let shown = shown_event_name(&decoded.name);
    assert!(shown.chars().count() <= SHOWN_EVENT_NAME_CHARS);
    assert!(decoded.name.starts_with(shown));
    if let Err(error) = &decoded.event {
        // What a refusal repeats is bounded, whatever the packet.
        assert!(error.message.len() < 4096, "{} bytes", error.message.len());
        let event = ErrorEvent::new(error, shown);
        let _ = format!("{event:?}");
    }
});
