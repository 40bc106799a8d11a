//! OpenAI Chat Completions: request validation and rewriting, response and stream rewriting.
//! This is also the pivot shape the other dialects translate through.

use crate::errors::{Code, GatewayError};
use crate::sse::Event;
use crate::usage::{self, Usage};
use serde_json::{Map, Value};

/// The most choices (`n`, Gemini's `candidateCount`) one request may ask for: each one is a
/// whole completion, reserved and billed.
pub const MAX_CHOICES: u64 = 8;

/// A validated chat request.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub body: Map<String, Value>,
    pub model: String,
    pub stream: bool,
    /// The client itself asked for the usage chunk (`stream_options.include_usage`).
    pub wants_usage: bool,
    pub max_tokens: Option<u64>,
}

pub fn parse_json_object(body: &[u8]) -> Result<Map<String, Value>, GatewayError> {
    if body.is_empty() {
        return Err(GatewayError::new(Code::BadRequest, "The request body is empty; a JSON object is required"));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(GatewayError::new(Code::BadRequest, "The request body must be a JSON object")),
        Err(e) => Err(GatewayError::new(Code::BadRequest, format!("The request body is not valid JSON: {e}"))),
    }
}

/// The `model` field: required, a non-empty string.
pub fn required_model(body: &Map<String, Value>) -> Result<String, GatewayError> {
    match body.get("model") {
        None | Some(Value::Null) => Err(GatewayError::missing("model")),
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(GatewayError::missing("model")),
        Some(_) => Err(GatewayError::bad("model", "'model' must be a string")),
    }
}

fn opt_number(value: Option<&Value>, field: &str, min: f64, max: f64) -> Result<(), GatewayError> {
    match value {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(x) if x >= min && x <= max => Ok(()),
            _ => Err(GatewayError::bad(field, format!("'{field}' must be between {min} and {max}"))),
        },
        Some(_) => Err(GatewayError::bad(field, format!("'{field}' must be a number"))),
    }
}

fn opt_positive_int(value: Option<&Value>, field: &str) -> Result<Option<u64>, GatewayError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(x) if x >= 1 => Ok(Some(x)),
            _ => Err(GatewayError::bad(field, format!("'{field}' must be a positive integer"))),
        },
        Some(_) => Err(GatewayError::bad(field, format!("'{field}' must be an integer"))),
    }
}

fn opt_bool(value: Option<&Value>, field: &str) -> Result<bool, GatewayError> {
    match value {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(GatewayError::bad(field, format!("'{field}' must be a boolean"))),
    }
}

/// `stream_options.include_usage`.
fn opt_include_usage(value: Option<&Value>) -> Result<bool, GatewayError> {
    match value {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Object(o)) => match o.get("include_usage") {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(GatewayError::bad("stream_options.include_usage", "'include_usage' must be a boolean")),
        },
        Some(_) => Err(GatewayError::bad("stream_options", "'stream_options' must be an object")),
    }
}

/// The scalar fields after `messages`, in the order they are validated: the token cap.
struct Scalars<'a> {
    temperature: Option<&'a Value>,
    top_p: Option<&'a Value>,
    presence_penalty: Option<&'a Value>,
    frequency_penalty: Option<&'a Value>,
    n: Option<&'a Value>,
    max_completion_tokens: Option<&'a Value>,
    max_tokens: Option<&'a Value>,
    stop: Option<&'a Value>,
}

/// Validates the scalars; returns the completion token cap and the number of choices (`n`).
fn check_scalars(s: &Scalars) -> Result<(Option<u64>, u64), GatewayError> {
    opt_number(s.temperature, "temperature", 0.0, 2.0)?;
    opt_number(s.top_p, "top_p", 0.0, 1.0)?;
    opt_number(s.presence_penalty, "presence_penalty", -2.0, 2.0)?;
    opt_number(s.frequency_penalty, "frequency_penalty", -2.0, 2.0)?;
    let n = opt_positive_int(s.n, "n")?.unwrap_or(1);
    if n > MAX_CHOICES {
        return Err(GatewayError::bad("n", format!("'n' must be between 1 and {MAX_CHOICES}; got {n}")));
    }
    let max_tokens = match opt_positive_int(s.max_completion_tokens, "max_completion_tokens")? {
        Some(m) => Some(m),
        None => opt_positive_int(s.max_tokens, "max_tokens")?,
    };
    match s.stop {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {}
        Some(_) => return Err(GatewayError::bad("stop", "'stop' must be a string or an array of strings")),
    }
    Ok((max_tokens, n))
}

/// Validates a Chat Completions request body.
pub fn parse_chat(raw: &[u8]) -> Result<ChatRequest, GatewayError> {
    let body = parse_json_object(raw)?;
    let model = required_model(&body)?;
    match body.get("messages") {
        None | Some(Value::Null) => return Err(GatewayError::missing("messages")),
        Some(Value::Array(msgs)) => {
            if msgs.is_empty() {
                return Err(GatewayError::bad("messages", "'messages' must contain at least one message"));
            }
            for (i, m) in msgs.iter().enumerate() {
                let role = m.as_object().and_then(|o| o.get("role")).and_then(Value::as_str);
                if role.is_none() {
                    return Err(GatewayError::bad(
                        &format!("messages[{i}].role"),
                        format!("'messages[{i}]' must be an object with a string 'role'"),
                    ));
                }
            }
        }
        Some(_) => return Err(GatewayError::bad("messages", "'messages' must be an array")),
    }
    let stream = opt_bool(body.get("stream"), "stream")?;
    let wants_usage = opt_include_usage(body.get("stream_options"))?;
    let (max_tokens, _) = check_scalars(&Scalars {
        temperature: body.get("temperature"),
        top_p: body.get("top_p"),
        presence_penalty: body.get("presence_penalty"),
        frequency_penalty: body.get("frequency_penalty"),
        n: body.get("n"),
        max_completion_tokens: body.get("max_completion_tokens"),
        max_tokens: body.get("max_tokens"),
        stop: body.get("stop"),
    })?;
    Ok(ChatRequest { body, model, stream, wants_usage, max_tokens })
}

/// What the routing path needs from a valid chat request, read without building the body.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatScan {
    pub model: String,
    pub stream: bool,
    pub wants_usage: bool,
    pub max_tokens: Option<u64>,
    /// Choices asked for (`n`, 1 when absent).
    pub n: u64,
    /// `usage::estimate_prompt_tokens` of the body.
    pub prompt_estimate: u64,
}

/// The fast read of a Chat Completions body: `Some` only when `parse_chat` accepts it, with the
/// same model, flags, token cap and prompt estimate. Anything unusual (an error of any kind, an
/// escaped or repeated key inside a message, a very wide message object) gives `None`, and the
/// caller takes `parse_chat`, which decides (and words every error) exactly as always.
pub fn scan_chat(raw: &[u8]) -> Option<ChatScan> {
    if raw.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return None;
    }
    let top: scan::Top = serde_json::from_slice(raw).ok()?;
    let model = match top.model {
        Some(Value::String(s)) if !s.is_empty() => s,
        _ => return None,
    };
    let (messages, bytes) = top.messages?;
    let stream = opt_bool(top.stream.as_ref(), "stream").ok()?;
    let wants_usage = opt_include_usage(top.stream_options.as_ref()).ok()?;
    // A budget key sent as `null` reads as no budget: if one must be added upstream, the general
    // path replaces it (a byte-level insert would repeat the key).
    let null_budget = top.max_tokens.is_some() || top.max_completion_tokens.is_some();
    let (max_tokens, n) = check_scalars(&Scalars {
        temperature: top.temperature.as_ref(),
        top_p: top.top_p.as_ref(),
        presence_penalty: top.presence_penalty.as_ref(),
        frequency_penalty: top.frequency_penalty.as_ref(),
        n: top.n.as_ref(),
        max_completion_tokens: top.max_completion_tokens.as_ref(),
        max_tokens: top.max_tokens.as_ref(),
        stop: top.stop.as_ref(),
    })
    .ok()?;
    if null_budget && max_tokens.is_none() {
        return None;
    }
    let bytes = bytes.saturating_add(top.tools_bytes);
    let prompt_estimate = usage::tokens_from_bytes(bytes)
        .saturating_add(messages.saturating_mul(usage::TOKENS_PER_MESSAGE))
        .saturating_add(usage::REPLY_TOKENS);
    Some(ChatScan { model, stream, wants_usage, max_tokens, n, prompt_estimate })
}

/// The serde visitors of `scan_chat`. Every failure is an error, which `scan_chat` turns into
/// "take the general path".
mod scan {
    use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
    use serde_json::Value;
    use std::fmt;

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
}

/// The body to send to an OpenAI-dialect upstream: the upstream's model id, and on streams
/// `stream_options.include_usage` so the upstream reports usage. `None`: send the original bytes.
pub fn upstream_chat_body(req: &ChatRequest, upstream_model: &str) -> Option<Vec<u8>> {
    let needs_model = req.model != upstream_model;
    let needs_usage = req.stream && !req.wants_usage;
    if !needs_model && !needs_usage {
        return None;
    }
    let mut body = req.body.clone();
    if needs_model {
        body.insert("model".to_string(), Value::String(upstream_model.to_string()));
    }
    if needs_usage {
        let mut opts = match body.remove("stream_options") {
            Some(Value::Object(o)) => o,
            _ => Map::new(),
        };
        opts.insert("include_usage".to_string(), Value::Bool(true));
        body.insert("stream_options".to_string(), Value::Object(opts));
    }
    serde_json::to_vec(&Value::Object(body)).ok()
}

/// Rewrites a non-streamed OpenAI response for the client: the client's model name back, and the
/// usage read. Returns the new body (`None`: unchanged) and the usage.
pub fn rewrite_response(body: &[u8], client_model: Option<&str>) -> (Option<Vec<u8>>, Option<Usage>) {
    if client_model.is_none() {
        // Nothing to rename: read only `usage` and skip the rest without building it.
        if let Some(u) = usage_only(body) {
            return (None, u);
        }
    }
    let mut v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => return (None, None),
    };
    let usage = usage::from_openai(&v);
    let mut out = None;
    if let (Some(name), Some(obj)) = (client_model, v.as_object_mut()) {
        if obj.contains_key("model") {
            obj.insert("model".to_string(), Value::String(name.to_string()));
            out = serde_json::to_vec(&v).ok();
        }
    }
    (out, usage)
}

/// The usage of a JSON object body, reading nothing else into memory: `Some(usage)` when the body
/// is an object with at most one `usage` member (valid JSON throughout), `None` to let the caller
/// take the general path (which then decides exactly as before).
fn usage_only(body: &[u8]) -> Option<Option<Usage>> {
    #[derive(serde::Deserialize)]
    struct Only {
        usage: Option<Value>,
    }
    // A derived struct would also accept a JSON array (fields by position): objects only.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return None;
    }
    let only: Only = serde_json::from_slice(body).ok()?;
    Some(only.usage.and_then(|u| usage::from_openai(&Value::Object(Map::from_iter([("usage".to_string(), u)])))))
}

/// OpenAI upstream stream -> OpenAI client stream: model renamed, usage read, the usage chunk
/// dropped for clients that did not ask for it.
#[derive(Debug)]
pub struct OpenAiStream {
    /// Rename `model` to this (the client's name) when it differs from the upstream's.
    pub client_model: Option<String>,
    pub client_wants_usage: bool,
    pub usage: Option<Usage>,
    pub saw_done: bool,
    /// Completion text seen, in bytes (for estimates when usage never comes).
    pub completion_bytes: u64,
}

impl OpenAiStream {
    pub fn new(client_model: Option<String>, client_wants_usage: bool) -> Self {
        OpenAiStream { client_model, client_wants_usage, usage: None, saw_done: false, completion_bytes: 0 }
    }

    /// Translates one upstream event, appending what the client gets to `out`.
    pub fn on_event(&mut self, ev: &Event, out: &mut Vec<u8>) {
        let data = ev.data.trim();
        if data == "[DONE]" {
            self.saw_done = true;
            out.extend_from_slice(b"data: [DONE]\n\n");
            return;
        }
        let has_usage = memchr::memmem::find(data.as_bytes(), b"\"usage\"").is_some();
        if self.client_model.is_none() && !has_usage {
            self.completion_bytes = self.completion_bytes.saturating_add(usage::text_len_hint(data));
            write_data(out, data.as_bytes());
            return;
        }
        let mut v: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(_) => {
                // Not JSON: forward as it came; the client's parser decides.
                write_data(out, data.as_bytes());
                return;
            }
        };
        self.completion_bytes = self.completion_bytes.saturating_add(usage::text_len_hint(data));
        let Some(obj) = v.as_object_mut() else {
            write_data(out, data.as_bytes());
            return;
        };
        if let Some(u) = obj.get("usage").filter(|u| u.is_object()) {
            let _ = u;
            if let Some(found) = usage::from_openai(&Value::Object(obj.clone())) {
                self.usage = Some(found);
            }
            if !self.client_wants_usage {
                let no_choices = obj.get("choices").and_then(Value::as_array).is_none_or(|a| a.is_empty());
                if no_choices {
                    return; // the extra chunk we asked for: the client never sees it
                }
                obj.remove("usage");
            }
        }
        if let Some(name) = &self.client_model {
            if obj.contains_key("model") {
                obj.insert("model".to_string(), Value::String(name.clone()));
            }
        }
        match serde_json::to_vec(&v) {
            Ok(bytes) => write_data(out, &bytes),
            Err(_) => write_data(out, data.as_bytes()),
        }
    }
}

/// One SSE event with `data` as its payload. An event's data joins its `data:` lines with `\n`,
/// so each line goes back out as its own `data:` line: written raw, a multi-line event would
/// reach the client as a truncated event plus stray lines.
fn write_data(out: &mut Vec<u8>, data: &[u8]) {
    if memchr::memchr(b'\n', data).is_none() {
        out.reserve(data.len() + 8);
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(data);
        out.extend_from_slice(b"\n\n");
        return;
    }
    for line in data.split(|&b| b == b'\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.push(b'\n');
}

#[cfg(test)]
#[path = "tests/openai_tests.rs"]
mod tests;
