//! Property tests of parsing and validation: whatever a client sends, decoding returns an event
//! or a refusal, never panics, and what it repeats back is bounded.

use proptest::prelude::*;
use serde_json::{Value, json};
use switchboard_protocol::inbound::{SHOWN_EVENT_NAME_CHARS, peek_event_name, shown_event_name};
use switchboard_protocol::{ClientEvent, ErrorCode};

const NAMES: [&str; 6] = [
    "join-room",
    "leave-room",
    "media-state",
    "stopScreenShare",
    "#rtcio:message",
    "other",
];

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A payload that looks like one of the protocol's, with fields that are sometimes wrong.
fn payload() -> impl Strategy<Value = Value> {
    let field = prop_oneof![
        json_value(),
        "[A-Za-z0-9._:@-]{0,130}".prop_map(Value::String),
        any::<bool>().prop_map(Value::Bool),
    ];
    prop::collection::btree_map(
        prop_oneof![
            Just("roomId".to_owned()),
            Just("name".to_owned()),
            Just("mic".to_owned()),
            Just("cam".to_owned()),
            Just("target".to_owned()),
            Just("source".to_owned()),
            Just("data".to_owned()),
            "[a-z]{1,6}",
        ],
        field,
        0..7,
    )
    .prop_map(|m| Value::Object(m.into_iter().collect()))
}

proptest! {
    /// Arbitrary text never panics the decoder; what it reports is bounded.
    #[test]
    fn decoding_any_text_never_panics(text in ".{0,300}") {
        let decoded = ClientEvent::decode(&text);
        if let Err(error) = decoded.event {
            prop_assert!(error.message.len() < 400, "{}", error.message);
        }
        let _ = peek_event_name(&text);
    }

    /// Event packets with any name and payload decode to an event or a refusal with a code;
    /// unknown names are `unknown-event`, with the name cut to 64 characters in the message.
    #[test]
    fn event_packets_decode_or_refuse(
        name in prop_oneof![prop::sample::select(NAMES.to_vec()).prop_map(str::to_owned), ".{0,200}"],
        payload in prop_oneof![payload(), json_value()],
        extra in prop::collection::vec(json_value(), 0..3),
    ) {
        let mut packet = vec![Value::String(name.clone()), payload];
        packet.extend(extra);
        let text = Value::Array(packet).to_string();
        let decoded = ClientEvent::decode(&text);
        prop_assert_eq!(&decoded.name, &name);
        match decoded.event {
            Ok(event) => prop_assert!(NAMES[..5].contains(&name.as_str()), "{event:?}"),
            Err(error) => {
                if !NAMES[..5].contains(&name.as_str()) {
                    prop_assert_eq!(error.code, ErrorCode::UnknownEvent);
                }
                // At most 64 characters of the name, each at most 12 bytes once escaped.
                prop_assert!(error.message.len() < 64 * 12 + 100, "{}", error.message);
            }
        }
        // The cheap peek agrees with the full decode whenever it reads a name.
        let peeked = peek_event_name(&text);
        prop_assert!(peeked.is_empty() || peeked == name);
    }

    /// Valid joins are accepted with exactly what was sent.
    #[test]
    fn valid_joins_are_accepted(room in "[A-Za-z0-9._:@-]{1,128}", name in "[^\\p{Cc}]{0,64}") {
        let text = json!(["join-room", {"roomId": room, "name": name}]).to_string();
        match ClientEvent::decode(&text).event {
            Ok(ClientEvent::JoinRoom(join)) => {
                prop_assert_eq!(join.room_id.as_str(), room.as_str());
                prop_assert_eq!(join.name.as_str(), name.as_str());
            }
            other => prop_assert!(false, "{other:?}"),
        }
    }

    /// Relay envelopes keep `data` as the exact text sent.
    #[test]
    fn envelopes_keep_data_text(target in "[A-Za-z0-9_-]{1,128}", data in json_value()) {
        let data_text = serde_json::to_string_pretty(&data).expect("JSON");
        let text = format!(r##"["#rtcio:message",{{"target":"{target}","data":{data_text}}}]"##);
        match ClientEvent::decode(&text).event {
            Ok(ClientEvent::Message(envelope)) => {
                prop_assert_eq!(envelope.target.as_str(), target.as_str());
                prop_assert_eq!(envelope.data.get(), data_text.as_str());
            }
            other => prop_assert!(false, "{other:?}"),
        }
    }

    /// Shown names are a prefix of the name, at most 64 characters.
    #[test]
    fn shown_names_are_bounded_prefixes(name in ".{0,200}") {
        let shown = shown_event_name(&name);
        prop_assert!(name.starts_with(shown));
        prop_assert_eq!(shown.chars().count(), name.chars().count().min(SHOWN_EVENT_NAME_CHARS));
    }
}
