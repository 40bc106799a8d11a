//! An OpenAI upstream's non-streamed `chat.completion`, read typed and borrowed (no
//! `serde_json::Value` tree) for the fronts that rewrite it (Anthropic, Gemini).
//!
//! It reads what the `Value` path reads, the way that path reads it: a repeated key counts
//! once, the last time (as in a parsed object); a field of the wrong type reads as absent (as
//! `Value::as_str` / `as_u64` do). Everything else is parsed in full and dropped, with the
//! checks a `Value` parse makes (number range, string escapes and UTF-8, nesting depth), so a
//! body this read accepts is one the `Value` parse accepts. What it does not cover (tool calls,
//! an object that is not one) makes `read` give `None`, and the caller takes the `Value` path.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;

use crate::usage::Usage;

/// The fields of a completion the fronts write out.
#[derive(Debug, Default)]
pub struct Completion<'a> {
    /// `id` when a string.
    pub id: Option<Cow<'a, str>>,
    pub choices: Vec<Choice<'a>>,
    /// `usage` when an object.
    pub usage: Option<UsageRead>,
}

/// One element of `choices` (any JSON value: a non-object reads as all absent).
#[derive(Debug, Default)]
pub struct Choice<'a> {
    /// `message.content` as text: a string, or the `text` strings of an array's parts joined.
    pub text: Cow<'a, str>,
    /// `message.refusal` when a string.
    pub refusal: Option<Cow<'a, str>>,
    /// `finish_reason` when a string.
    pub finish_reason: Option<Cow<'a, str>>,
    /// `stop_reason` (the matched stop sequence some servers report) when a string.
    pub stop_reason: Option<Cow<'a, str>>,
    /// `index` when an unsigned integer.
    pub index: Option<u64>,
}

/// `usage`, as `usage::from_openai` reads it, and its `credits_consumed` when a number.
#[derive(Debug, Default)]
pub struct UsageRead {
    pub usage: Usage,
    pub credits: Option<Number>,
}

/// Reads a completion; `None` for anything the typed read does not cover, including every body
/// the `Value` path refuses (the caller takes that path, which words the error).
pub fn read(body: &[u8]) -> Option<Completion<'_>> {
    let c: Top = serde_json::from_slice(body).ok()?;
    c.0
}

/// The top level: `None` when it is not an object, or has no `choices` array.
struct Top<'a>(Option<Completion<'a>>);

/// A JSON value of any type, parsed in full (as a `Value` parse would) and dropped.
struct Skip;

/// A JSON value read as a string when it is one (else `None`), the rest parsed and dropped.
struct Str<'a>(Option<Cow<'a, str>>);

/// A JSON value read as a number when it is one, the rest parsed and dropped.
#[derive(Default)]
struct Num(Option<Number>);

/// An error that sends the caller to the `Value` path.
fn uncovered<E: de::Error>() -> E {
    E::custom("not covered by the typed read")
}

macro_rules! any_value {
    ($name:ident, $out:ty, $default:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<$out, E> {
            Ok($default)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<$out, E> {
            Ok($default)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<$out, E> {
            Ok($default)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<$out, E> {
            Ok($default)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<$out, E> {
            Ok($default)
        }
        fn visit_unit<E: de::Error>(self) -> Result<$out, E> {
            Ok($default)
        }
        fn visit_none<E: de::Error>(self) -> Result<$out, E> {
            Ok($default)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<$out, D::Error> {
            <Skip as de::Deserialize>::deserialize(d)?;
            Ok($default)
        }
    };
}

macro_rules! skip_containers {
    ($out:ty, $default:expr) => {
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<$out, A::Error> {
            while seq.next_element::<Skip>()?.is_some() {}
            Ok($default)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<$out, A::Error> {
            while map.next_entry::<Skip, Skip>()?.is_some() {}
            Ok($default)
        }
    };
}

impl<'de> de::Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Skip;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            any_value!(V, Skip, Skip);
            skip_containers!(Skip, Skip);
        }
        d.deserialize_any(V)
    }
}

impl<'de> de::Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Some(Cow::Borrowed(s))))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Str<'de>, E> {
                Ok(Str(Some(Cow::Owned(s))))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Str<'de>, E> {
                Ok(Str(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Str<'de>, E> {
                Ok(Str(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Str<'de>, E> {
                Ok(Str(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Str<'de>, E> {
                Ok(Str(None))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Str<'de>, E> {
                Ok(Str(Some(Cow::Owned(s.to_string()))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Str<'de>, E> {
                Ok(Str(None))
            }
            skip_containers!(Str<'de>, Str(None));
        }
        d.deserialize_any(V)
    }
}

impl<'de> de::Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Num;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Num, E> {
                Ok(Num(None))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Num, E> {
                Ok(Num(Some(Number::from(n))))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Num, E> {
                Ok(Num(Some(Number::from(n))))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Num, E> {
                Ok(Num(Number::from_f64(n)))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Num, E> {
                Ok(Num(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Num, E> {
                Ok(Num(None))
            }
            skip_containers!(Num, Num(None));
        }
        d.deserialize_any(V)
    }
}

impl Num {
    /// As `Value::as_u64`, 0 when absent (`usage`'s counts).
    fn count(&self) -> u64 {
        self.0.as_ref().and_then(Number::as_u64).unwrap_or(0)
    }
}

/// An object key, borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Str::deserialize(d)? {
            Str(Some(k)) => Ok(Key(k)),
            Str(None) => Err(uncovered()),
        }
    }
}

/// Runs `f` on each entry of an object value; any other value gives `default`.
macro_rules! object_visitor {
    ($v:ident, $out:ty, $what:expr, |$map:ident, $key:ident, $acc:ident| $body:block) => {
        struct $v;
        impl<'de> Visitor<'de> for $v {
            type Value = $out;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str($what)
            }
            any_value!($v, $out, <$out>::default());
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<$out, A::Error> {
                while seq.next_element::<Skip>()?.is_some() {}
                Ok(<$out>::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut $map: A) -> Result<$out, A::Error> {
                let mut $acc = <$out>::default();
                while let Some(Key($key)) = $map.next_key::<Key>()? {
                    $body
                }
                Ok($acc)
            }
        }
    };
}

impl<'de> de::Deserialize<'de> for Top<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Default)]
        struct Acc<'a> {
            id: Option<Cow<'a, str>>,
            choices: Option<Vec<Choice<'a>>>,
            usage: Option<UsageRead>,
        }
        object_visitor!(V, Acc<'de>, "a chat completion", |map, key, acc| {
            match key.as_ref() {
                "id" => acc.id = map.next_value::<Str>()?.0,
                "choices" => acc.choices = map.next_value::<Choices>()?.0,
                "usage" => acc.usage = map.next_value::<UsageField>()?.0,
                _ => {
                    map.next_value::<Skip>()?;
                }
            }
        });
        // Only an object is covered: anything else is the `Value` path's error.
        struct Outer;
        impl<'de> Visitor<'de> for Outer {
            type Value = Top<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a chat completion")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Top<'de>, A::Error> {
                let acc = V.visit_map(map)?;
                Ok(Top(acc.choices.map(|choices| Completion { id: acc.id, choices, usage: acc.usage })))
            }
        }
        d.deserialize_map(Outer)
    }
}

/// `choices`: `Some` when an array.
struct Choices<'a>(Option<Vec<Choice<'a>>>);

impl<'de> de::Deserialize<'de> for Choices<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Choices<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("choices")
            }
            any_value!(V, Choices<'de>, Choices(None));
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Choices<'de>, A::Error> {
                while map.next_entry::<Skip, Skip>()?.is_some() {}
                Ok(Choices(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Choices<'de>, A::Error> {
                let mut v = Vec::with_capacity(1);
                while let Some(c) = seq.next_element::<Choice>()? {
                    v.push(c);
                }
                Ok(Choices(Some(v)))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> de::Deserialize<'de> for Choice<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        object_visitor!(V, Choice<'de>, "a choice", |map, key, acc| {
            match key.as_ref() {
                "message" => {
                    let m = map.next_value::<Message>()?;
                    acc.text = m.text;
                    acc.refusal = m.refusal;
                }
                "finish_reason" => acc.finish_reason = map.next_value::<Str>()?.0,
                "stop_reason" => acc.stop_reason = map.next_value::<Str>()?.0,
                "index" => acc.index = map.next_value::<Num>()?.0.as_ref().and_then(Number::as_u64),
                _ => {
                    map.next_value::<Skip>()?;
                }
            }
        });
        d.deserialize_any(V)
    }
}

/// A choice's `message` (any JSON value: a non-object reads as all absent).
#[derive(Default)]
struct Message<'a> {
    text: Cow<'a, str>,
    refusal: Option<Cow<'a, str>>,
}

impl<'de> de::Deserialize<'de> for Message<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        object_visitor!(V, Message<'de>, "a message", |map, key, acc| {
            match key.as_ref() {
                "content" => acc.text = map.next_value::<Content>()?.0,
                "refusal" => acc.refusal = map.next_value::<Str>()?.0,
                // Tool calls (a non-empty array) are not covered.
                "tool_calls" => map.next_value::<NoCalls>().map(|_| ())?,
                _ => {
                    map.next_value::<Skip>()?;
                }
            }
        });
        d.deserialize_any(V)
    }
}

/// `tool_calls` that are not a non-empty array (which is an error: not covered).
struct NoCalls;

impl<'de> de::Deserialize<'de> for NoCalls {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NoCalls;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("tool calls")
            }
            any_value!(V, NoCalls, NoCalls);
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NoCalls, A::Error> {
                match seq.next_element::<Skip>()? {
                    None => Ok(NoCalls),
                    Some(_) => Err(uncovered()),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NoCalls, A::Error> {
                while map.next_entry::<Skip, Skip>()?.is_some() {}
                Ok(NoCalls)
            }
        }
        d.deserialize_any(V)
    }
}

/// `content` as text, as `pivot::content_text` reads it.
struct Content<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Content<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Content<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("content")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Content<'de>, E> {
                Ok(Content(Cow::Borrowed(s)))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Content<'de>, E> {
                Ok(Content(Cow::Owned(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Content<'de>, E> {
                Ok(Content(Cow::Owned(s.to_string())))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Content<'de>, E> {
                Ok(Content(Cow::Borrowed("")))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Content<'de>, E> {
                Ok(Content(Cow::Borrowed("")))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Content<'de>, E> {
                Ok(Content(Cow::Borrowed("")))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Content<'de>, E> {
                Ok(Content(Cow::Borrowed("")))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Content<'de>, E> {
                Ok(Content(Cow::Borrowed("")))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Content<'de>, A::Error> {
                while map.next_entry::<Skip, Skip>()?.is_some() {}
                Ok(Content(Cow::Borrowed("")))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Content<'de>, A::Error> {
                let mut s = String::new();
                while let Some(p) = seq.next_element::<PartText>()? {
                    if let Some(t) = p.0 {
                        s.push_str(&t);
                    }
                }
                Ok(Content(Cow::Owned(s)))
            }
        }
        d.deserialize_any(V)
    }
}

/// A content part's `text` when a string.
#[derive(Default)]
struct PartText<'a>(Option<Cow<'a, str>>);

impl<'de> de::Deserialize<'de> for PartText<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        object_visitor!(V, PartText<'de>, "a content part", |map, key, acc| {
            match key.as_ref() {
                "text" => acc.0 = map.next_value::<Str>()?.0,
                _ => {
                    map.next_value::<Skip>()?;
                }
            }
        });
        d.deserialize_any(V)
    }
}

/// `usage`: `Some` when an object.
pub(crate) struct UsageField(Option<UsageRead>);

impl UsageField {
    /// The usage, as `usage::from_openai` reads it from the object holding this field.
    pub(crate) fn usage(&self) -> Option<Usage> {
        self.0.as_ref().map(|u| u.usage)
    }
}

/// The counts of `usage` and its details, as `Value::as_u64` reads them.
#[derive(Default)]
struct Counts {
    prompt: Num,
    completion: Num,
    /// `prompt_tokens_details` (`cached_tokens`, `cache_creation_tokens`).
    prompt_details: Details,
    /// `completion_tokens_details` (`reasoning_tokens`).
    completion_details: Details,
    credits: Num,
}

/// A details object's counts (any other value reads as zeros).
#[derive(Default)]
struct Details {
    cached: u64,
    cache_creation: u64,
    reasoning: u64,
}

impl<'de> de::Deserialize<'de> for Details {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        object_visitor!(V, Details, "usage details", |map, key, acc| {
            match key.as_ref() {
                "cached_tokens" => acc.cached = map.next_value::<Num>()?.count(),
                "cache_creation_tokens" => acc.cache_creation = map.next_value::<Num>()?.count(),
                "reasoning_tokens" => acc.reasoning = map.next_value::<Num>()?.count(),
                _ => {
                    map.next_value::<Skip>()?;
                }
            }
        });
        d.deserialize_any(V)
    }
}

impl<'de> de::Deserialize<'de> for UsageField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        object_visitor!(V, Counts, "usage", |map, key, acc| {
            match key.as_ref() {
                "prompt_tokens" => acc.prompt = map.next_value()?,
                "completion_tokens" => acc.completion = map.next_value()?,
                "prompt_tokens_details" => acc.prompt_details = map.next_value()?,
                "completion_tokens_details" => acc.completion_details = map.next_value()?,
                "credits_consumed" => acc.credits = map.next_value()?,
                _ => {
                    map.next_value::<Skip>()?;
                }
            }
        });
        struct Outer;
        impl<'de> Visitor<'de> for Outer {
            type Value = UsageField;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("usage")
            }
            any_value!(Outer, UsageField, UsageField(None));
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<UsageField, A::Error> {
                while seq.next_element::<Skip>()?.is_some() {}
                Ok(UsageField(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<UsageField, A::Error> {
                let c = V.visit_map(map)?;
                Ok(UsageField(Some(UsageRead {
                    usage: Usage {
                        prompt_tokens: c.prompt.count(),
                        completion_tokens: c.completion.count(),
                        cached_tokens: c.prompt_details.cached,
                        reasoning_tokens: c.completion_details.reasoning,
                        cache_creation_tokens: c.prompt_details.cache_creation,
                    },
                    credits: c.credits.0,
                })))
            }
        }
        d.deserialize_any(Outer)
    }
}
