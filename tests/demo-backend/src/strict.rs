//! `--strict`: refuse what the real services refuse, with their error shapes and statuses, so
//! that a gateway translation that sends a field or a value the real API would reject fails a
//! test instead of passing against a lenient mock.
//!
//! Field lists follow each API's documented request body (OpenAI Chat Completions create,
//! Anthropic Messages create, Gemini `GenerateContentRequest`). Gemini's proto JSON accepts both
//! the lowerCamelCase and the snake_case name of every field.

use serde_json::{Map, Value};

/// A refusal: the message (and, for OpenAI, `param` and `code`) of a 400 in the API's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub message: String,
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

fn refuse(message: impl Into<String>) -> Refusal {
    Refusal { message: message.into(), param: None, code: None }
}

fn refuse_at(message: impl Into<String>, param: impl Into<String>, code: &'static str) -> Refusal {
    Refusal { message: message.into(), param: Some(param.into()), code: Some(code) }
}

/// The JSON type name OpenAI's validator uses in its messages.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a decimal",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Ty {
    Str,
    Int,
    Num,
    Bool,
    Obj,
    Arr,
    /// A string or an array (OpenAI `stop`, message `content`).
    StrOrArr,
    /// A string or an object (OpenAI `tool_choice`).
    StrOrObj,
    /// Anything (nested shapes this mock does not model).
    Any,
}

impl Ty {
    fn accepts(self, v: &Value) -> bool {
        match self {
            Ty::Str => v.is_string(),
            Ty::Int => v.is_i64() || v.is_u64(),
            Ty::Num => v.is_number(),
            Ty::Bool => v.is_boolean(),
            Ty::Obj => v.is_object(),
            Ty::Arr => v.is_array(),
            Ty::StrOrArr => v.is_string() || v.is_array(),
            Ty::StrOrObj => v.is_string() || v.is_object(),
            Ty::Any => true,
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Ty::Str => "a string",
            Ty::Int => "an integer",
            Ty::Num => "a number",
            Ty::Bool => "a boolean",
            Ty::Obj => "an object",
            Ty::Arr => "an array",
            Ty::StrOrArr => "a string or an array",
            Ty::StrOrObj => "a string or an object",
            Ty::Any => "a value",
        }
    }
}

// ------------------------------------------------------------------ OpenAI ----

/// Top-level fields of `POST /v1/chat/completions` (the documented create parameters).
const OPENAI_FIELDS: &[(&str, Ty)] = &[
    ("messages", Ty::Arr),
    ("model", Ty::Str),
    ("audio", Ty::Obj),
    ("frequency_penalty", Ty::Num),
    ("function_call", Ty::StrOrObj),
    ("functions", Ty::Arr),
    ("logit_bias", Ty::Obj),
    ("logprobs", Ty::Bool),
    ("max_completion_tokens", Ty::Int),
    ("max_tokens", Ty::Int),
    ("metadata", Ty::Obj),
    ("modalities", Ty::Arr),
    ("moderation", Ty::Obj),
    ("n", Ty::Int),
    ("parallel_tool_calls", Ty::Bool),
    ("prediction", Ty::Obj),
    ("presence_penalty", Ty::Num),
    ("prompt_cache_key", Ty::Str),
    ("prompt_cache_options", Ty::Obj),
    ("prompt_cache_retention", Ty::Str),
    ("reasoning_effort", Ty::Str),
    ("response_format", Ty::Obj),
    ("safety_identifier", Ty::Str),
    ("seed", Ty::Int),
    ("service_tier", Ty::Str),
    ("stop", Ty::StrOrArr),
    ("store", Ty::Bool),
    ("stream", Ty::Bool),
    ("stream_options", Ty::Obj),
    ("temperature", Ty::Num),
    ("tool_choice", Ty::StrOrObj),
    ("tools", Ty::Arr),
    ("top_logprobs", Ty::Int),
    ("top_p", Ty::Num),
    ("user", Ty::Str),
    ("verbosity", Ty::Str),
    ("web_search_options", Ty::Obj),
];

const OPENAI_ROLES: &[&str] = &["system", "assistant", "user", "function", "tool", "developer"];

/// The fields each message role may carry.
fn openai_message_fields(role: &str) -> &'static [&'static str] {
    match role {
        "system" | "developer" | "user" => &["role", "content", "name"],
        "assistant" => &["role", "content", "name", "tool_calls", "function_call", "refusal", "audio"],
        "tool" => &["role", "content", "tool_call_id"],
        _ => &["role", "content", "name"],
    }
}

/// OpenAI Chat Completions request validation (what api.openai.com answers with a 400).
pub fn openai_chat(req: &Map<String, Value>) -> Result<(), Refusal> {
    for (k, v) in req {
        let Some((_, ty)) = OPENAI_FIELDS.iter().find(|(f, _)| f == k) else {
            return Err(refuse(format!("Unrecognized request argument supplied: {k}")));
        };
        if !v.is_null() && !ty.accepts(v) {
            return Err(refuse_at(
                format!("Invalid type for '{k}': expected {}, but got {} instead.", ty.expected(), type_name(v)),
                k.as_str(),
                "invalid_type",
            ));
        }
    }
    let Some(model) = req.get("model").and_then(Value::as_str) else {
        return Err(refuse("you must provide a model parameter"));
    };
    if model.is_empty() {
        return Err(refuse("you must provide a model parameter"));
    }
    let Some(messages) = req.get("messages").and_then(Value::as_array) else {
        return Err(refuse_at("Missing required parameter: 'messages'.", "messages", "missing_required_parameter"));
    };
    if messages.is_empty() {
        return Err(refuse_at(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            "messages",
            "empty_array",
        ));
    }
    for (i, m) in messages.iter().enumerate() {
        let Some(m) = m.as_object() else {
            return Err(refuse_at(
                format!("Invalid type for 'messages[{i}]': expected an object, but got {} instead.", type_name(m)),
                format!("messages[{i}]"),
                "invalid_type",
            ));
        };
        let role = match m.get("role") {
            Some(Value::String(r)) => r.as_str(),
            Some(_) | None => {
                return Err(refuse_at(
                    format!("Missing required parameter: 'messages[{i}].role'."),
                    format!("messages[{i}].role"),
                    "missing_required_parameter",
                ))
            }
        };
        if !OPENAI_ROLES.contains(&role) {
            return Err(refuse_at(
                format!(
                    "Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'."
                ),
                format!("messages[{i}].role"),
                "invalid_value",
            ));
        }
        let allowed = openai_message_fields(role);
        if let Some(k) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(refuse_at(
                format!("Additional properties are not allowed ('{k}' was unexpected) - 'messages.{i}'"),
                format!("messages[{i}]"),
                "invalid_value",
            ));
        }
        match m.get("content") {
            Some(Value::String(_) | Value::Array(_)) => {}
            Some(Value::Null) | None
                if role == "assistant" && (m.contains_key("tool_calls") || m.contains_key("function_call")) => {}
            Some(Value::Null) | None => {
                return Err(refuse_at(
                    format!("Missing required parameter: 'messages[{i}].content'."),
                    format!("messages[{i}].content"),
                    "missing_required_parameter",
                ))
            }
            Some(v) => {
                return Err(refuse_at(
                    format!(
                        "Invalid type for 'messages[{i}].content': expected one of a string or array of objects, but got {} instead.",
                        type_name(v)
                    ),
                    format!("messages[{i}].content"),
                    "invalid_type",
                ))
            }
        }
        if role == "tool" && !m.get("tool_call_id").is_some_and(Value::is_string) {
            return Err(refuse_at(
                format!("Missing required parameter: 'messages[{i}].tool_call_id'."),
                format!("messages[{i}].tool_call_id"),
                "missing_required_parameter",
            ));
        }
    }
    let streaming = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if !streaming && req.get("stream_options").is_some_and(|v| !v.is_null()) {
        return Err(refuse_at(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
            "invalid_value",
        ));
    }
    Ok(())
}

// --------------------------------------------------------------- Anthropic ----

/// Top-level fields of `POST /v1/messages` (the documented create parameters).
const ANTHROPIC_FIELDS: &[(&str, Ty)] = &[
    ("max_tokens", Ty::Int),
    ("messages", Ty::Arr),
    ("model", Ty::Str),
    ("cache_control", Ty::Obj),
    ("container", Ty::Any),
    ("diagnostics", Ty::Obj),
    ("inference_geo", Ty::Str),
    ("metadata", Ty::Obj),
    ("output_config", Ty::Obj),
    ("service_tier", Ty::Str),
    ("speed", Ty::Str),
    ("stop_sequences", Ty::Arr),
    ("stream", Ty::Bool),
    ("system", Ty::StrOrArr),
    ("temperature", Ty::Num),
    ("thinking", Ty::Obj),
    ("tool_choice", Ty::Obj),
    ("tools", Ty::Arr),
    ("top_k", Ty::Int),
    ("top_p", Ty::Num),
    ("user_profile_id", Ty::Str),
];

fn pydantic_type(ty: Ty) -> &'static str {
    match ty {
        Ty::Str => "Input should be a valid string",
        Ty::Int => "Input should be a valid integer",
        Ty::Num => "Input should be a valid number",
        Ty::Bool => "Input should be a valid boolean",
        Ty::Obj => "Input should be a valid dictionary",
        Ty::Arr => "Input should be a valid list",
        Ty::StrOrArr => "Input should be a valid string or list",
        Ty::StrOrObj | Ty::Any => "Input should be a valid value",
    }
}

/// Whether a message `content` (string or blocks) has something in it.
fn anthropic_content_nonempty(content: &Value) -> bool {
    match content {
        Value::String(s) => !s.is_empty(),
        Value::Array(blocks) => !blocks.is_empty(),
        _ => false,
    }
}

/// Anthropic Messages request validation (what api.anthropic.com answers with a 400).
pub fn anthropic_messages(req: &Map<String, Value>) -> Result<(), Refusal> {
    for (k, v) in req {
        let Some((_, ty)) = ANTHROPIC_FIELDS.iter().find(|(f, _)| f == k) else {
            return Err(refuse(format!("{k}: Extra inputs are not permitted")));
        };
        if !ty.accepts(v) {
            return Err(refuse(format!("{k}: {}", pydantic_type(*ty))));
        }
    }
    for required in ["model", "messages", "max_tokens"] {
        if !req.contains_key(required) {
            return Err(refuse(format!("{required}: Field required")));
        }
    }
    if req.get("max_tokens").and_then(Value::as_i64).is_some_and(|n| n < 0) {
        return Err(refuse("max_tokens: Input should be greater than or equal to 0"));
    }
    if let Some(t) = req.get("temperature").and_then(Value::as_f64) {
        if !(0.0..=1.0).contains(&t) {
            return Err(refuse("temperature: range: 0..1"));
        }
    }
    if let Some(Value::Array(blocks)) = req.get("system") {
        for (i, b) in blocks.iter().enumerate() {
            if b.get("type").and_then(Value::as_str) != Some("text") || !b.get("text").is_some_and(Value::is_string) {
                return Err(refuse(format!("system.{i}: Input should be a valid text block")));
            }
        }
    }
    let messages = req.get("messages").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
    if messages.is_empty() {
        return Err(refuse("messages: at least one message is required"));
    }
    for (i, m) in messages.iter().enumerate() {
        let Some(m) = m.as_object() else {
            return Err(refuse(format!("messages.{i}: Input should be a valid dictionary")));
        };
        if let Some(k) = m.keys().find(|k| !matches!(k.as_str(), "role" | "content")) {
            return Err(refuse(format!("messages.{i}.{k}: Extra inputs are not permitted")));
        }
        match m.get("role").and_then(Value::as_str) {
            Some("user" | "assistant") => {}
            Some("system") => {
                return Err(refuse(
                    "messages: Unexpected role \"system\". The Messages API accepts a top-level `system` parameter, not \"system\" as an input message role.",
                ))
            }
            Some(_) => return Err(refuse(format!("messages.{i}.role: Input should be 'user' or 'assistant'"))),
            None => return Err(refuse(format!("messages.{i}.role: Field required"))),
        }
        let Some(content) = m.get("content") else {
            return Err(refuse(format!("messages.{i}.content: Field required")));
        };
        if !content.is_string() && !content.is_array() {
            return Err(refuse(format!("messages.{i}.content: Input should be a valid string or list")));
        }
        if let Value::Array(blocks) = content {
            for (j, b) in blocks.iter().enumerate() {
                match b.get("type").and_then(Value::as_str) {
                    None => return Err(refuse(format!("messages.{i}.content.{j}.type: Field required"))),
                    Some("text") => {
                        if b.get("text").and_then(Value::as_str).is_none_or(str::is_empty) {
                            return Err(refuse("messages: text content blocks must be non-empty"));
                        }
                    }
                    Some(_) => {}
                }
            }
        }
        let final_assistant = i + 1 == messages.len() && m.get("role").and_then(Value::as_str) == Some("assistant");
        if !final_assistant && !anthropic_content_nonempty(content) {
            return Err(refuse(format!(
                "messages.{i}: all messages must have non-empty content except for the optional final assistant message"
            )));
        }
    }
    Ok(())
}

// ------------------------------------------------------------------ Gemini ----

/// `GenerateContentRequest` body fields (snake_case; camelCase accepted too).
const GEMINI_FIELDS: &[(&str, Ty)] = &[
    ("contents", Ty::Arr),
    ("tools", Ty::Arr),
    ("tool_config", Ty::Obj),
    ("safety_settings", Ty::Arr),
    ("system_instruction", Ty::Obj),
    ("generation_config", Ty::Obj),
    ("cached_content", Ty::Str),
];

/// `GenerationConfig` fields.
const GEMINI_GENERATION_FIELDS: &[(&str, Ty)] = &[
    ("stop_sequences", Ty::Arr),
    ("response_mime_type", Ty::Str),
    ("response_schema", Ty::Obj),
    ("response_json_schema", Ty::Any),
    ("response_modalities", Ty::Arr),
    ("candidate_count", Ty::Int),
    ("max_output_tokens", Ty::Int),
    ("temperature", Ty::Num),
    ("top_p", Ty::Num),
    ("top_k", Ty::Int),
    ("seed", Ty::Int),
    ("presence_penalty", Ty::Num),
    ("frequency_penalty", Ty::Num),
    ("response_logprobs", Ty::Bool),
    ("logprobs", Ty::Int),
    ("enable_enhanced_civic_answers", Ty::Bool),
    ("speech_config", Ty::Obj),
    ("thinking_config", Ty::Obj),
    ("image_config", Ty::Obj),
    ("media_resolution", Ty::Str),
];

/// `Content` fields and `Part` fields.
const GEMINI_CONTENT_FIELDS: &[&str] = &["role", "parts"];
const GEMINI_PART_FIELDS: &[&str] = &[
    "text",
    "inline_data",
    "file_data",
    "function_call",
    "function_response",
    "executable_code",
    "code_execution_result",
    "thought",
    "thought_signature",
    "video_metadata",
    "part_metadata",
    "media_resolution",
];

/// lowerCamelCase -> snake_case (proto JSON names -> proto field names).
fn snake(name: &str) -> String {
    let mut s = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            s.push('_');
            s.push(c.to_ascii_lowercase());
        } else {
            s.push(c);
        }
    }
    s
}

/// Proto JSON: numbers may also come as numeric strings.
fn gemini_accepts(ty: Ty, v: &Value) -> bool {
    match (ty, v) {
        (Ty::Int | Ty::Num, Value::String(s)) => s.trim().parse::<f64>().is_ok(),
        (Ty::Num, Value::Number(_)) => true,
        (Ty::Int, Value::Number(n)) => n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => ty.accepts(v),
    }
}

fn unknown_name(k: &str, at: Option<&str>) -> Refusal {
    match at {
        None => refuse(format!("Invalid JSON payload received. Unknown name \"{k}\": Cannot find field.")),
        Some(at) => {
            refuse(format!("Invalid JSON payload received. Unknown name \"{k}\" at '{at}': Cannot find field."))
        }
    }
}

fn gemini_fields(obj: &Map<String, Value>, fields: &[(&str, Ty)], at: Option<&str>) -> Result<(), Refusal> {
    for (k, v) in obj {
        let name = snake(k);
        let Some((_, ty)) = fields.iter().find(|(f, _)| *f == name) else {
            return Err(unknown_name(k, at));
        };
        if !v.is_null() && !gemini_accepts(*ty, v) {
            let field = match at {
                Some(at) => format!("{at}.{name}"),
                None => name.clone(),
            };
            return Err(refuse(format!("Invalid value at '{field}' ({}), {}", ty.expected(), crate::util::to_json(v))));
        }
    }
    Ok(())
}

fn gemini_content(c: &Value, at: &str, roles: bool) -> Result<(), Refusal> {
    let Some(c) = c.as_object() else {
        return Err(refuse(format!(
            "Invalid value at '{at}' (type.googleapis.com/google.ai.generativelanguage.v1beta.Content)"
        )));
    };
    if let Some(k) = c.keys().find(|k| !GEMINI_CONTENT_FIELDS.contains(&snake(k).as_str())) {
        return Err(unknown_name(k, Some(at)));
    }
    if roles {
        match c.get("role") {
            None => {}
            Some(Value::String(r)) if r.is_empty() || r == "user" || r == "model" => {}
            Some(_) => return Err(refuse("Please use a valid role: user, model.")),
        }
    }
    let parts = match c.get("parts") {
        Some(Value::Array(p)) => p.as_slice(),
        None | Some(Value::Null) => &[],
        Some(_) => {
            return Err(refuse(format!(
                "Invalid value at '{at}.parts' (type.googleapis.com/google.ai.generativelanguage.v1beta.Part)"
            )))
        }
    };
    if parts.is_empty() {
        return Err(refuse(format!("* GenerateContentRequest.{at}.parts: contents.parts must not be empty.\n")));
    }
    for (j, p) in parts.iter().enumerate() {
        let Some(p) = p.as_object() else {
            return Err(refuse(format!(
                "Invalid value at '{at}.parts[{j}]' (type.googleapis.com/google.ai.generativelanguage.v1beta.Part)"
            )));
        };
        if let Some(k) = p.keys().find(|k| !GEMINI_PART_FIELDS.contains(&snake(k).as_str())) {
            return Err(unknown_name(k, Some(&format!("{at}.parts[{j}]"))));
        }
        if let Some(t) = p.get("text") {
            if !t.is_string() {
                return Err(refuse(format!(
                    "Invalid value at '{at}.parts[{j}].text' (TYPE_STRING), {}",
                    crate::util::to_json(t)
                )));
            }
        }
    }
    Ok(())
}

/// Gemini `generateContent` request validation (what generativelanguage.googleapis.com answers
/// with a 400 INVALID_ARGUMENT).
pub fn gemini_generate(req: &Map<String, Value>) -> Result<(), Refusal> {
    gemini_fields(req, GEMINI_FIELDS, None)?;
    let contents = match req.get("contents") {
        Some(Value::Array(c)) if !c.is_empty() => c,
        _ => return Err(refuse("* GenerateContentRequest.contents: contents is not specified\n")),
    };
    for (i, c) in contents.iter().enumerate() {
        gemini_content(c, &format!("contents[{i}]"), true)?;
    }
    let get = |camel: &str, snake_name: &str| req.get(camel).or_else(|| req.get(snake_name));
    if let Some(sys) = get("systemInstruction", "system_instruction") {
        gemini_content(sys, "system_instruction", false)?;
    }
    if let Some(Value::Object(g)) = get("generationConfig", "generation_config") {
        gemini_fields(g, GEMINI_GENERATION_FIELDS, Some("generation_config"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn openai() {
        let ok = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": true,
                        "stream_options": {"include_usage": true}, "max_tokens": 5, "temperature": 0.5});
        assert_eq!(openai_chat(&obj(ok)), Ok(()));
        let e = openai_chat(&obj(json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "top_k": 3})))
            .unwrap_err();
        assert_eq!(e.message, "Unrecognized request argument supplied: top_k");
        let e = openai_chat(&obj(json!({"messages": [{"role": "user", "content": "x"}]}))).unwrap_err();
        assert_eq!(e.message, "you must provide a model parameter");
        let e = openai_chat(&obj(json!({"model": "m"}))).unwrap_err();
        assert_eq!(e.code, Some("missing_required_parameter"));
        let e = openai_chat(&obj(json!({"model": "m", "messages": [{"role": "model", "content": "x"}]}))).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].role"));
        let e =
            openai_chat(&obj(json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": "5"})))
                .unwrap_err();
        assert_eq!(e.code, Some("invalid_type"));
        let e = openai_chat(&obj(json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
                                        "stream_options": {"include_usage": true}})))
        .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("stream_options"));
        let e = openai_chat(&obj(json!({"model": "m", "messages": [{"role": "user", "content": "x", "parts": []}]})))
            .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0]"));
        let tool_turn = json!({"model": "m", "messages": [
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c", "content": "ok"}]});
        assert_eq!(openai_chat(&obj(tool_turn)), Ok(()));
    }

    #[test]
    fn anthropic() {
        let ok = json!({"model": "m", "max_tokens": 10, "system": "s", "top_k": 3,
                        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]});
        assert_eq!(anthropic_messages(&obj(ok)), Ok(()));
        let e = anthropic_messages(&obj(json!({"model": "m", "messages": [{"role": "user", "content": "x"}]})))
            .unwrap_err();
        assert_eq!(e.message, "max_tokens: Field required");
        let e = anthropic_messages(&obj(json!({"max_tokens": 1, "messages": []}))).unwrap_err();
        assert_eq!(e.message, "model: Field required");
        let e = anthropic_messages(&obj(json!({"model": "m", "max_tokens": 1, "messages": [], "n": 2}))).unwrap_err();
        assert_eq!(e.message, "n: Extra inputs are not permitted");
        let e = anthropic_messages(&obj(json!({"model": "m", "max_tokens": 1, "messages": []}))).unwrap_err();
        assert_eq!(e.message, "messages: at least one message is required");
        let e = anthropic_messages(&obj(
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "system", "content": "x"}]}),
        ))
        .unwrap_err();
        assert!(e.message.contains("Unexpected role \"system\""));
        let e = anthropic_messages(&obj(
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "tool", "content": "x"}]}),
        ))
        .unwrap_err();
        assert_eq!(e.message, "messages.0.role: Input should be 'user' or 'assistant'");
        let e = anthropic_messages(&obj(
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": ""}]}),
        ))
        .unwrap_err();
        assert!(e.message.contains("non-empty content"));
        let e = anthropic_messages(&obj(json!({"model": "m", "max_tokens": 1,
            "messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]})))
        .unwrap_err();
        assert_eq!(e.message, "messages: text content blocks must be non-empty");
    }

    #[test]
    fn gemini() {
        let ok = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                        "generationConfig": {"maxOutputTokens": 5, "top_k": 2},
                        "system_instruction": {"parts": [{"text": "s"}]}});
        assert_eq!(gemini_generate(&obj(ok)), Ok(()));
        let e =
            gemini_generate(&obj(json!({"contents": [{"role": "user", "parts": [{"text": "x"}]}], "max_tokens": 3})))
                .unwrap_err();
        assert_eq!(e.message, "Invalid JSON payload received. Unknown name \"max_tokens\": Cannot find field.");
        let e =
            gemini_generate(&obj(json!({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}))).unwrap_err();
        assert_eq!(e.message, "Please use a valid role: user, model.");
        let e = gemini_generate(&obj(json!({}))).unwrap_err();
        assert!(e.message.contains("contents is not specified"));
        let e = gemini_generate(&obj(json!({"contents": [{"role": "user", "parts": []}]}))).unwrap_err();
        assert!(e.message.contains("must not be empty"));
        let e = gemini_generate(&obj(json!({"contents": [{"parts": [{"text": "x"}]}],
                                            "generationConfig": {"max_tokens": 3}})))
        .unwrap_err();
        assert!(e.message.contains("Unknown name \"max_tokens\" at 'generation_config'"));
    }
}
