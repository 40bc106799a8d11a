//! The serde visitors of `scan_chat`. Every failure is an error, which `scan_chat` turns into
//! "take the general path".

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// Deeper than this, `usage::string_bytes` counts nothing (and `guard::check` refuses
/// deeper bodies before any scan).
const MAX_DEPTH: u32 = crate::dialect::guard::MAX_JSON_DEPTH as u32;
/// Keys per object tracked for repeats; a wider object goes to the general path.
const MAX_KEYS: usize = 16;

#[derive(Default)]
pub struct Top {
    pub model: Option<Value>,
    /// (message count, string bytes as `estimate_prompt_tokens` counts them); `None`: absent.
    pub messages: Option<(u64, u64)>,
    pub tools_bytes: u64,
    pub stream: Option<Value>,
    pub stream_options: Option<Value>,
    pub temperature: Option<Value>,
    pub top_p: Option<Value>,
    pub presence_penalty: Option<Value>,
    pub frequency_penalty: Option<Value>,
    pub n: Option<Value>,
    pub max_completion_tokens: Option<Value>,
    pub max_tokens: Option<Value>,
    pub stop: Option<Value>,
}

enum Field {
    Model,
    Messages,
    Tools,
    Stream,
    StreamOptions,
    Temperature,
    TopP,
    PresencePenalty,
    FrequencyPenalty,
    N,
    MaxCompletionTokens,
    MaxTokens,
    Stop,
    Other,
}

impl<'de> de::Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, k: &str) -> Result<Field, E> {
                Ok(match k {
                    "model" => Field::Model,
                    "messages" => Field::Messages,
                    "tools" => Field::Tools,
                    "stream" => Field::Stream,
                    "stream_options" => Field::StreamOptions,
                    "temperature" => Field::Temperature,
                    "top_p" => Field::TopP,
                    "presence_penalty" => Field::PresencePenalty,
                    "frequency_penalty" => Field::FrequencyPenalty,
                    "n" => Field::N,
                    "max_completion_tokens" => Field::MaxCompletionTokens,
                    "max_tokens" => Field::MaxTokens,
                    "stop" => Field::Stop,
                    _ => Field::Other,
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

impl<'de> de::Deserialize<'de> for Top {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Top;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top, A::Error> {
                // A repeated key: the last one counts, as in a parsed object.
                let mut t = Top::default();
                while let Some(k) = map.next_key::<Field>()? {
                    match k {
                        Field::Model => t.model = Some(map.next_value()?),
                        Field::Messages => t.messages = Some(map.next_value_seed(Messages)?),
                        Field::Tools => t.tools_bytes = map.next_value_seed(StrBytes { depth: 0 })?,
                        Field::Stream => t.stream = Some(map.next_value()?),
                        Field::StreamOptions => t.stream_options = Some(map.next_value()?),
                        Field::Temperature => t.temperature = Some(map.next_value()?),
                        Field::TopP => t.top_p = Some(map.next_value()?),
                        Field::PresencePenalty => t.presence_penalty = Some(map.next_value()?),
                        Field::FrequencyPenalty => t.frequency_penalty = Some(map.next_value()?),
                        Field::N => t.n = Some(map.next_value()?),
                        Field::MaxCompletionTokens => t.max_completion_tokens = Some(map.next_value()?),
                        Field::MaxTokens => t.max_tokens = Some(map.next_value()?),
                        Field::Stop => t.stop = Some(map.next_value()?),
                        Field::Other => {
                            map.next_value_seed(StrBytes { depth: 1 })?;
                        }
                    }
                }
                Ok(t)
            }
        }
        d.deserialize_map(V)
    }
}

/// An object key, borrowed from the body (an escaped key is an error: general path).
struct Key<'de>(&'de str);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an unescaped key")
            }
            fn visit_borrowed_str<E: de::Error>(self, k: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(k))
            }
        }
        d.deserialize_str(V)
    }
}

/// The keys of one object so far, to refuse repeats (a parsed object keeps only the last).
struct Seen<'de> {
    keys: [&'de str; MAX_KEYS],
    len: usize,
}

impl<'de> Seen<'de> {
    fn new() -> Self {
        Seen { keys: [""; MAX_KEYS], len: 0 }
    }

    fn add<E: de::Error>(&mut self, k: &'de str) -> Result<(), E> {
        let seen = self.keys.get(..self.len).unwrap_or(&[]);
        if seen.contains(&k) {
            return Err(E::custom("repeated key"));
        }
        match self.keys.get_mut(self.len) {
            Some(slot) => *slot = k,
            None => return Err(E::custom("too many keys")),
        }
        self.len += 1;
        Ok(())
    }
}

/// `messages`: an array of at least one object with a string `role`; its message count and
/// string bytes.
struct Messages;

impl<'de> DeserializeSeed<'de> for Messages {
    type Value = (u64, u64);
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(u64, u64), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Messages {
    type Value = (u64, u64);
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("messages")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(u64, u64), A::Error> {
        let (mut count, mut bytes) = (0u64, 0u64);
        while let Some(b) = seq.next_element_seed(Message)? {
            count += 1;
            bytes = bytes.saturating_add(b);
        }
        if count == 0 {
            return Err(de::Error::custom("no messages"));
        }
        Ok((count, bytes))
    }
}

/// One message: an object with a string `role`; its string bytes.
struct Message;

impl<'de> DeserializeSeed<'de> for Message {
    type Value = u64;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Message {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a message")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<u64, A::Error> {
        let mut seen = Seen::new();
        let mut role = false;
        let mut bytes = 0u64;
        while let Some(Key(k)) = map.next_key()? {
            seen.add(k)?;
            match k {
                "role" => role = map.next_value_seed(IsString)?,
                "type" => {
                    map.next_value_seed(StrBytes { depth: 1 })?;
                }
                _ => bytes = bytes.saturating_add(map.next_value_seed(StrBytes { depth: 1 })?),
            }
        }
        if !role {
            return Err(de::Error::custom("no role"));
        }
        Ok(bytes)
    }
}

/// Whether a value is a string.
struct IsString;

impl<'de> DeserializeSeed<'de> for IsString {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for IsString {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<bool, E> {
        Ok(true)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element_seed(StrBytes { depth: 2 })?.is_some() {}
        Ok(false)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while let Some(Key(_)) = map.next_key()? {
            map.next_value_seed(StrBytes { depth: 2 })?;
        }
        Ok(false)
    }
}

/// `usage::string_bytes` of a value at `depth`: the bytes of its strings, the values of
/// `role` and `type` keys left out, nothing past `MAX_DEPTH`.
struct StrBytes {
    depth: u32,
}

impl<'de> DeserializeSeed<'de> for StrBytes {
    type Value = u64;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        if self.depth > MAX_DEPTH {
            // `guard::check` refused deeper bodies already; never skipped unread.
            return Err(de::Error::custom("too deep"));
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrBytes {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<u64, E> {
        Ok(s.len() as u64)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<u64, E> {
        Ok(0)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<u64, E> {
        Ok(0)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<u64, E> {
        Ok(0)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<u64, E> {
        Ok(0)
    }
    fn visit_unit<E: de::Error>(self) -> Result<u64, E> {
        Ok(0)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<u64, A::Error> {
        let mut n = 0u64;
        while let Some(b) = seq.next_element_seed(StrBytes { depth: self.depth + 1 })? {
            n = n.saturating_add(b);
        }
        Ok(n)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<u64, A::Error> {
        let mut seen = Seen::new();
        let mut n = 0u64;
        while let Some(Key(k)) = map.next_key()? {
            seen.add(k)?;
            if k == "role" || k == "type" {
                map.next_value_seed(StrBytes { depth: self.depth + 1 })?;
            } else {
                n = n.saturating_add(map.next_value_seed(StrBytes { depth: self.depth + 1 })?);
            }
        }
        Ok(n)
    }
}
