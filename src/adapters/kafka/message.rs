//! The wire contract of one request message, decoded without I/O. A request's value is an
//! `IamRequest` (JSON), its `id` header the correlation id (Spring's `kafka_correlationId` is
//! accepted too), an optional `reply-to` header (or Spring's `kafka_replyTopic`, with
//! `kafka_replyPartition`) names where the reply goes, and its key is the workspace. Whatever
//! is wrong with a message becomes an `invalid-argument` error to answer, never a panic.

use crate::protocol::{IamError, IamRequest, Operation};

pub const ID_HEADER: &str = "id";
pub const REPLY_TO_HEADER: &str = "reply-to";
pub const SPRING_CORRELATION_HEADER: &str = "kafka_correlationId";
pub const SPRING_REPLY_TOPIC_HEADER: &str = "kafka_replyTopic";
pub const SPRING_REPLY_PARTITION_HEADER: &str = "kafka_replyPartition";

/// Longest accepted correlation id.
pub const MAX_ID_BYTES: usize = 256;

/// Where and how to answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplyTo {
    /// The correlation id, as received (echoed byte for byte).
    pub id: Vec<u8>,
    /// Echo the id under Spring's header name too.
    pub spring: bool,
    /// A topic other than the configured response topic.
    pub topic: Option<String>,
    pub partition: Option<i32>,
}

/// A decoded message: the request, or why it cannot be served; and where to answer, when the
/// message says (without an `id` there is no one to answer).
#[derive(Debug)]
pub struct Incoming {
    pub reply: Option<ReplyTo>,
    pub key: Vec<u8>,
    pub request: Result<(IamRequest, Operation), IamError>,
}

impl Incoming {
    /// The key that orders this request among others: the workspace it concerns (whatever
    /// key the producer chose), else the message key.
    pub fn order_key(&self) -> &[u8] {
        match &self.request {
            Ok((r, _)) if !r.target_workspace().is_empty() => r.target_workspace().as_bytes(),
            _ => &self.key,
        }
    }
}

/// The correlation id as text: itself when it is UTF-8, else its hex (Spring sends 16 raw
/// bytes). Used as the request id that makes a redelivery an answer instead of an effect.
pub fn id_text(id: &[u8]) -> String {
    match std::str::from_utf8(id) {
        Ok(s) => s.to_owned(),
        Err(_) => hex::encode(id),
    }
}

fn valid_topic(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

pub fn decode<'a>(
    headers: impl IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
    key: Option<&[u8]>,
    payload: Option<&[u8]>,
    max_bytes: usize,
) -> Incoming {
    let (mut id, mut spring, mut topic, mut partition) = (None, false, None, None);
    let mut bad_reply_to = false;
    for (name, value) in headers {
        let value = value.unwrap_or_default();
        match name {
            ID_HEADER if !value.is_empty() => id = Some(value.to_vec()),
            SPRING_CORRELATION_HEADER if !value.is_empty() => {
                spring = true;
                id.get_or_insert_with(|| value.to_vec());
            }
            REPLY_TO_HEADER | SPRING_REPLY_TOPIC_HEADER => match std::str::from_utf8(value) {
                Ok(t) if valid_topic(t) => topic = Some(t.to_owned()),
                _ => bad_reply_to = true,
            },
            SPRING_REPLY_PARTITION_HEADER => match <[u8; 4]>::try_from(value) {
                Ok(b) => partition = Some(i32::from_be_bytes(b)),
                Err(_) => bad_reply_to = true,
            },
            _ => {}
        }
    }
    let reply = id.map(|id| ReplyTo { id, spring, topic, partition });
    let key = key.unwrap_or_default().to_vec();
    let request = (|| {
        let reply = reply.as_ref().ok_or_else(|| IamError::invalid("the `id` header is required"))?;
        if reply.id.len() > MAX_ID_BYTES {
            return Err(IamError::invalid(format!("the `id` header is longer than {MAX_ID_BYTES} bytes")));
        }
        if bad_reply_to {
            return Err(IamError::invalid("the reply-to header does not name a valid topic"));
        }
        let payload =
            payload.filter(|p| !p.is_empty()).ok_or_else(|| IamError::invalid("the message has no value"))?;
        if payload.len() > max_bytes {
            return Err(IamError::invalid(format!("the message value is larger than {max_bytes} bytes")));
        }
        let mut request = IamRequest::from_json(payload)?;
        let operation = Operation::parse(&request.operation)?;
        if request.request_id.is_empty() {
            request.request_id = id_text(&reply.id);
        }
        Ok((request, operation))
    })();
    // An id too long to echo is not echoed: the reply would be refused or mismatched.
    let reply = reply.filter(|r| r.id.len() <= MAX_ID_BYTES);
    Incoming { reply, key, request }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ErrorKind;

    fn dec(headers: &[(&str, &[u8])], payload: &[u8]) -> Incoming {
        decode(headers.iter().map(|(n, v)| (*n, Some(*v))), Some(b"acme"), Some(payload), 1024)
    }

    fn error(i: &Incoming) -> ErrorKind {
        i.request.as_ref().unwrap_err().kind
    }

    #[test]
    fn a_good_request_takes_its_id_as_request_id() {
        let i = dec(&[("id", b"c-1")], br#"{"operation":"list-users","workspace":"acme"}"#);
        let (req, op) = i.request.unwrap();
        assert_eq!(op, Operation::ListUsers);
        assert_eq!(req.request_id, "c-1");
        assert_eq!(
            i.reply.unwrap(),
            ReplyTo { id: b"c-1".to_vec(), spring: false, topic: None, partition: None }
        );
        let i = dec(&[("id", b"c-2")], br#"{"operation":"bootstrap","request_id":"mine"}"#);
        assert_eq!(i.request.unwrap().0.request_id, "mine", "an explicit request_id wins");
    }

    #[test]
    fn bad_messages_become_invalid_argument_answers() {
        let id: &[(&str, &[u8])] = &[("id", b"x")];
        assert_eq!(error(&dec(id, b"{nope")), ErrorKind::InvalidArgument);
        assert_eq!(error(&dec(id, b"\xff\xfe\x00")), ErrorKind::InvalidArgument);
        assert_eq!(error(&dec(id, br#"{"operation":"nope"}"#)), ErrorKind::InvalidArgument);
        assert_eq!(error(&dec(id, b"")), ErrorKind::InvalidArgument);
        let huge = format!(r#"{{"operation":"login","username":"{}"}}"#, "a".repeat(2000));
        let i = dec(id, huge.as_bytes());
        assert!(i.request.as_ref().unwrap_err().message.contains("larger than 1024"));
        assert!(i.reply.is_some(), "answered");
        let i = dec(&[("id", b"x"), ("reply-to", b"bad topic!")], br#"{"operation":"bootstrap"}"#);
        assert_eq!(error(&i), ErrorKind::InvalidArgument);
    }

    #[test]
    fn without_an_id_there_is_no_one_to_answer() {
        let i = dec(&[], br#"{"operation":"bootstrap"}"#);
        assert!(i.reply.is_none());
        assert_eq!(error(&i), ErrorKind::InvalidArgument);
        let long = vec![b'a'; MAX_ID_BYTES + 1];
        let i = dec(&[("id", &long)], br#"{"operation":"bootstrap"}"#);
        assert!(i.reply.is_none() && i.request.is_err());
    }

    #[test]
    fn spring_headers_are_understood() {
        let corr = [0u8, 1, 2, 255];
        let i = dec(
            &[
                ("kafka_correlationId", &corr),
                ("kafka_replyTopic", b"replies"),
                ("kafka_replyPartition", &3i32.to_be_bytes()),
            ],
            br#"{"operation":"get-signing-key-public"}"#,
        );
        let reply = i.reply.clone().unwrap();
        assert!(reply.spring);
        assert_eq!((reply.topic.as_deref(), reply.partition), (Some("replies"), Some(3)));
        assert_eq!(i.request.unwrap().0.request_id, "000102ff");
    }

    #[test]
    fn order_key_is_the_message_key_else_the_workspace() {
        let i = decode(
            [("id", Some(&b"1"[..]))],
            None,
            Some(br#"{"operation":"list-users","workspace":"w"}"#),
            1024,
        );
        assert_eq!(i.order_key(), b"w");
        assert_eq!(dec(&[("id", b"1")], b"{}").order_key(), b"acme");
    }
}
