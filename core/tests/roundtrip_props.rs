//! Request round trips through the dialects, as properties over generated conversations:
//! an OpenAI chat request, validated into the pivot, sent to an Anthropic (or Gemini) upstream
//! and read back into the pivot as if a client of that dialect had sent it, keeps its
//! conversation: roles, text, tool calls (name and arguments), tool results, tool declarations,
//! and the parameters both dialects have.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use tollgate_core::dialect::pivot::{content_texts, PivotRequest};
use tollgate_core::dialect::{anthropic, gemini, openai};

/// One conversation item, in a form every dialect can carry.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    System(String),
    User(String),
    Assistant(String),
    /// A tool call: name and arguments (an object).
    Call(String, Value),
    /// A tool result: the name of the tool it answers (via its call) and its text.
    Result(String, String),
}

/// What a pivot request says, normalized: the dialects may merge or split adjacent text of one
/// role, and Gemini mints its own call ids, so text is joined per role run and results are
/// matched to their call by tool name.
fn conversation(body: &Map<String, Value>) -> Vec<Item> {
    let mut names_by_id: Map<String, Value> = Map::new();
    let mut items: Vec<Item> = Vec::new();
    let push_text = |items: &mut Vec<Item>, item: Item| {
        let merged = match (items.last_mut(), &item) {
            (Some(Item::System(a)), Item::System(b))
            | (Some(Item::User(a)), Item::User(b))
            | (Some(Item::Assistant(a)), Item::Assistant(b)) => {
                a.push('\n');
                a.push_str(b);
                true
            }
            _ => false,
        };
        if !merged {
            items.push(item);
        }
    };
    for m in body["messages"].as_array().unwrap() {
        let texts: Vec<String> = content_texts(m.get("content")).into_iter().filter(|t| !t.is_empty()).collect();
        let text = texts.join("\n");
        match m["role"].as_str().unwrap() {
            "system" | "developer" => {
                if !text.is_empty() {
                    push_text(&mut items, Item::System(text))
                }
            }
            "user" => {
                if !text.is_empty() {
                    push_text(&mut items, Item::User(text))
                }
            }
            "assistant" => {
                if !text.is_empty() {
                    push_text(&mut items, Item::Assistant(text));
                }
                for tc in m.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
                    let name = tc["function"]["name"].as_str().unwrap().to_string();
                    let args = tc["function"]["arguments"].as_str().unwrap();
                    let args: Value =
                        if args.trim().is_empty() { json!({}) } else { serde_json::from_str(args).unwrap() };
                    names_by_id.insert(tc["id"].as_str().unwrap().to_string(), json!(name));
                    items.push(Item::Call(name, args));
                }
            }
            "tool" => {
                let id = m["tool_call_id"].as_str().unwrap();
                let name = names_by_id.get(id).and_then(Value::as_str).unwrap_or("?").to_string();
                items.push(Item::Result(name, text));
            }
            r => panic!("unexpected role {r}"),
        }
    }
    items
}

/// The tools a pivot request declares: name, description, parameters.
fn tools(body: &Map<String, Value>) -> Vec<(String, String, Value)> {
    body.get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|t| {
            let f = &t["function"];
            (
                f["name"].as_str().unwrap().to_string(),
                f.get("description").and_then(Value::as_str).unwrap_or("").to_string(),
                f.get("parameters").cloned().unwrap_or(json!({"type": "object", "properties": {}})),
            )
        })
        .collect()
}

fn text() -> impl Strategy<Value = String> {
    // Printable text with the characters JSON and the translators have to take care of.
    proptest::string::string_regex("[a-zA-Z0-9 .,!?'\"\\\\/<>{}é世😀-]{1,24}")
        .unwrap()
        .prop_filter("not blank", |s| !s.trim().is_empty())
}

fn tool_name() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-z][a-z0-9_]{0,11}").unwrap()
}

fn args() -> impl Strategy<Value = Value> {
    proptest::collection::btree_map(
        "[a-z]{1,6}",
        prop_oneof![
            text().prop_map(Value::from),
            (0i64..1000).prop_map(Value::from),
            any::<bool>().prop_map(Value::from)
        ],
        0..4,
    )
    .prop_map(|m| Value::Object(m.into_iter().collect()))
}

/// An assistant turn: text and/or tool calls (each answered by a tool message).
#[derive(Debug, Clone)]
struct Turn {
    user: String,
    reply: Option<String>,
    calls: Vec<(String, Value, String)>,
}

fn turn() -> impl Strategy<Value = Turn> {
    (text(), proptest::option::of(text()), proptest::collection::vec((tool_name(), args(), text()), 0..3))
        .prop_map(|(user, reply, calls)| Turn { user, reply, calls })
}

/// A valid OpenAI chat request: optional system prompt, then user / assistant turns, where an
/// assistant's tool calls are answered by tool messages before the next user message.
fn request() -> impl Strategy<Value = Value> {
    (
        proptest::option::of(text()),
        proptest::collection::vec(turn(), 1..4),
        proptest::collection::vec((tool_name(), text()), 0..3),
        proptest::option::of(1u64..4096),
        proptest::option::of(0u32..=10),
        any::<bool>(),
    )
        .prop_map(|(system, turns, decls, max_tokens, temp, stream)| {
            let mut messages = Vec::new();
            if let Some(s) = system {
                messages.push(json!({"role": "system", "content": s}));
            }
            let mut n = 0;
            for (i, t) in turns.iter().enumerate() {
                messages.push(json!({"role": "user", "content": t.user}));
                if i + 1 == turns.len() {
                    break;
                }
                let calls: Vec<Value> = t
                    .calls
                    .iter()
                    .map(|(name, a, _)| {
                        n += 1;
                        json!({"id": format!("call_{n}"), "type": "function",
                               "function": {"name": name, "arguments": a.to_string()}})
                    })
                    .collect();
                let mut m = json!({"role": "assistant", "content": t.reply.clone().unwrap_or_default()});
                if !calls.is_empty() {
                    m["tool_calls"] = Value::Array(calls.clone());
                }
                if t.reply.is_none() && calls.is_empty() {
                    m["content"] = json!("ok");
                }
                messages.push(m);
                for (c, (_, _, result)) in calls.iter().zip(&t.calls) {
                    messages.push(json!({"role": "tool", "tool_call_id": c["id"], "content": result}));
                }
            }
            let mut body = json!({"model": "m", "messages": messages, "stream": stream});
            if !decls.is_empty() {
                body["tools"] = Value::Array(
                    decls
                        .iter()
                        .map(|(name, d)| json!({"type": "function", "function": {"name": name, "description": d,
                            "parameters": {"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]}}}))
                        .collect(),
                );
            }
            if let Some(m) = max_tokens {
                body["max_tokens"] = json!(m);
            }
            if let Some(t) = temp {
                body["temperature"] = json!(f64::from(t) / 10.0);
            }
            body
        })
}

/// Gemini carries a tool result as an object (`functionResponse.response`): a text result goes
/// out as `{"content": text}` and a Gemini client's object comes back as its JSON text. The
/// dialect cannot say more; the text inside is what must survive.
fn unwrap_gemini_results(items: Vec<Item>) -> Vec<Item> {
    items
        .into_iter()
        .map(|i| match i {
            Item::Result(name, t) => {
                let inner = serde_json::from_str::<Value>(&t)
                    .ok()
                    .and_then(|v| v.get("content").and_then(Value::as_str).map(str::to_string));
                Item::Result(name, inner.unwrap_or(t))
            }
            other => other,
        })
        .collect()
}

fn pivot_of(body: &Value) -> PivotRequest {
    let raw = serde_json::to_vec(body).unwrap();
    let c = openai::parse_chat(&raw).unwrap();
    PivotRequest { body: c.body, model: c.model, stream: c.stream, max_tokens: c.max_tokens }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// OpenAI -> pivot -> Anthropic request -> (as an Anthropic client's request) pivot.
    #[test]
    fn openai_to_anthropic_and_back_keeps_the_conversation(body in request()) {
        let p = pivot_of(&body);
        let up = anthropic::request_from_pivot(&p.body, "claude", 1024).unwrap();
        let mut up = up.as_object().unwrap().clone();
        up.insert("model".into(), json!("m"));
        up.insert("stream".into(), json!(p.stream));
        let back = anthropic::request_to_pivot(&up).unwrap();
        prop_assert_eq!(conversation(&back.body), conversation(&p.body));
        prop_assert_eq!(tools(&back.body), tools(&p.body));
        prop_assert_eq!(back.stream, p.stream);
        prop_assert_eq!(back.max_tokens, Some(p.max_tokens.unwrap_or(1024)));
        if let Some(t) = p.body.get("temperature").and_then(Value::as_f64) {
            // Anthropic's range is 0..1: higher values are clamped on the way.
            prop_assert_eq!(back.body["temperature"].as_f64(), Some(t.min(1.0)));
        }
    }

    /// OpenAI -> pivot -> Gemini request -> (as a Gemini client's request) pivot.
    #[test]
    fn openai_to_gemini_and_back_keeps_the_conversation(body in request()) {
        let p = pivot_of(&body);
        let up = gemini::request_from_pivot(&p.body, "gemini").unwrap();
        let back = gemini::request_to_pivot(up.as_object().unwrap(), "m", p.stream).unwrap();
        prop_assert_eq!(unwrap_gemini_results(conversation(&back.body)), conversation(&p.body));
        prop_assert_eq!(tools(&back.body), tools(&p.body));
        prop_assert_eq!(back.max_tokens, p.max_tokens);
        prop_assert_eq!(back.body.get("temperature").and_then(Value::as_f64), p.body.get("temperature").and_then(Value::as_f64));
    }

    /// Anthropic client -> pivot -> Anthropic upstream gives the client's request back (the
    /// dialect's own round trip), for generated conversations.
    #[test]
    fn anthropic_request_round_trips(body in request()) {
        let p = pivot_of(&body);
        let original = anthropic::request_from_pivot(&p.body, "m", 1024).unwrap();
        let back = anthropic::request_to_pivot(original.as_object().unwrap()).unwrap();
        let again = anthropic::request_from_pivot(&back.body, "m", 1024).unwrap();
        prop_assert_eq!(again, original);
    }

    /// Same for Gemini.
    #[test]
    fn gemini_request_round_trips(body in request()) {
        let p = pivot_of(&body);
        let original = gemini::request_from_pivot(&p.body, "m").unwrap();
        let back = gemini::request_to_pivot(original.as_object().unwrap(), "m", false).unwrap();
        let again = gemini::request_from_pivot(&back.body, "m").unwrap();
        prop_assert_eq!(again, original);
    }
}
