//! A Responses API client: its request validated and translated into the pivot; the pivot's
//! response written out as a `response` object (the stream: `front_stream`).

use serde_json::{json, Map, Value};

use super::usage_json;
use crate::dialect::build::{jobj, jstr, opt_bool_at, opt_object_at, opt_str_at, req_str_at};
use crate::dialect::pivot::{self, Finish, PivotRequest};
use crate::dialect::validate::{
    number_in, opt_array, opt_bool, opt_number, opt_object, opt_positive, opt_str, req_str, required_model,
};
use crate::dialect::{bad, ins};
use crate::errors::GatewayError;

/// The 400 for a parameter that needs state the gateway does not keep.
fn stateless(param: &str, what: &str) -> GatewayError {
    bad(
        param,
        format!("'{param}' is not supported: this gateway keeps no {what}; send the whole conversation in 'input'"),
    )
}

/// Validates a Responses request and translates it to an OpenAI chat body.
#[inline(never)]
pub fn request_to_pivot(body: &Map<String, Value>) -> Result<PivotRequest, GatewayError> {
    let model = required_model(body)?;
    if !matches!(body.get("previous_response_id"), None | Some(Value::Null)) {
        return Err(stateless("previous_response_id", "stored responses"));
    }
    if !matches!(body.get("conversation"), None | Some(Value::Null)) {
        return Err(stateless("conversation", "conversations"));
    }
    if opt_bool(body.get("store"), "store")? == Some(true) {
        return Err(stateless("store", "stored responses (send 'store': false or leave it out)"));
    }
    if opt_bool(body.get("background"), "background")? == Some(true) {
        return Err(bad("background", "'background' is not supported: responses are not stored"));
    }
    let stream = opt_bool(body.get("stream"), "stream")?.unwrap_or(false);

    // The request's own level keeps `json!` (inline): it is on every request of this front, and
    // the items below are where the out-of-line builders and lazy paths pay.
    let mut messages: Vec<Value> = Vec::new();
    if let Some(i) = opt_str(body.get("instructions"), "instructions")? {
        if !i.is_empty() {
            messages.push(json!({"role": "system", "content": i}));
        }
    }
    match body.get("input") {
        None | Some(Value::Null) => return Err(GatewayError::missing("input")),
        Some(Value::String(s)) => messages.push(json!({"role": "user", "content": s})),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                item_to_pivot(i, item, &mut messages)?;
            }
        }
        Some(_) => return Err(bad("input", "'input' must be a string or an array of input items")),
    }
    if !messages.iter().any(|m| m.get("role").and_then(Value::as_str) != Some("system")) {
        return Err(bad("input", "'input' must contain at least one message"));
    }

    let mut out = Map::new();
    ins(&mut out, "model", Value::String(model.clone()));
    ins(&mut out, "messages", Value::Array(messages));
    let max_tokens = opt_positive(body.get("max_output_tokens"), "max_output_tokens")?;
    if let Some(m) = max_tokens {
        ins(&mut out, "max_tokens", Value::from(m));
    }
    number_in(body.get("temperature"), "temperature", 0.0, 2.0)?;
    number_in(body.get("top_p"), "top_p", 0.0, 1.0)?;
    for field in ["temperature", "top_p"] {
        if let Some(n) = opt_number(body.get(field), field)? {
            ins(&mut out, field, n.clone());
        }
    }
    if let Some(u) = opt_str(body.get("user"), "user")? {
        ins(&mut out, "user", json!(u));
    }
    let has_tools = tools_to_pivot(body.get("tools"), &mut out)?;
    if let Some(tc) = tool_choice_to_pivot(body.get("tool_choice"))? {
        // OpenAI refuses tool_choice without tools.
        if has_tools {
            ins(&mut out, "tool_choice", tc);
        }
    }
    if let Some(p) = opt_bool(body.get("parallel_tool_calls"), "parallel_tool_calls")? {
        if has_tools {
            ins(&mut out, "parallel_tool_calls", Value::Bool(p));
        }
    }
    if let Some(text) = opt_object(body.get("text"), "text")? {
        if let Some(f) = format_to_pivot(text.get("format"))? {
            ins(&mut out, "response_format", f);
        }
    }
    if let Some(r) = opt_object(body.get("reasoning"), "reasoning")? {
        if let Some(e) = opt_str(r.get("effort"), "reasoning.effort")? {
            ins(&mut out, "reasoning_effort", json!(e));
        }
    }
    if stream {
        ins(&mut out, "stream", Value::Bool(true));
        ins(&mut out, "stream_options", json!({"include_usage": true}));
    }
    Ok(PivotRequest { body: out, model, stream, max_tokens })
}

/// One item of `input` appended to the pivot messages.
#[inline(never)]
fn item_to_pivot(i: usize, item: &Value, out: &mut Vec<Value>) -> Result<(), GatewayError> {
    let Some(o) = item.as_object() else {
        return Err(bad(&format!("input[{i}]"), format!("'input[{i}]' must be an object")));
    };
    let ty = opt_str_at(o.get("type"), format_args!("input[{i}].type"))?;
    match ty {
        None | Some("message") => message_to_pivot(i, o, out),
        Some("function_call") => {
            let id = req_str_at(o.get("call_id"), format_args!("input[{i}].call_id"))?;
            let name = req_str_at(o.get("name"), format_args!("input[{i}].name"))?;
            let arguments = req_str_at(o.get("arguments"), format_args!("input[{i}].arguments"))?;
            let call = jobj([
                ("id", jstr(id)),
                ("type", jstr("function")),
                ("function", jobj([("name", jstr(name)), ("arguments", jstr(arguments))])),
            ]);
            // Calls in a row (and after the assistant's text) belong to one assistant message.
            let last = out.last_mut().filter(|m| m.get("role").and_then(Value::as_str) == Some("assistant"));
            match last.and_then(Value::as_object_mut) {
                Some(m) => match m.get_mut("tool_calls").and_then(Value::as_array_mut) {
                    Some(calls) => calls.push(call),
                    None => {
                        m.insert("tool_calls".to_string(), Value::Array(vec![call]));
                    }
                },
                None => out.push(jobj([
                    ("role", jstr("assistant")),
                    ("content", Value::Null),
                    ("tool_calls", Value::Array(vec![call])),
                ])),
            }
            Ok(())
        }
        Some("function_call_output") => {
            let call_id = req_str_at(o.get("call_id"), format_args!("input[{i}].call_id"))?;
            let content = match o.get("output") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => {
                    let mut s = String::new();
                    for (k, part) in parts.iter().enumerate() {
                        match part.get("type").and_then(Value::as_str) {
                            Some("input_text" | "output_text") => {
                                s.push_str(req_str_at(part.get("text"), format_args!("input[{i}].output[{k}].text"))?)
                            }
                            _ => {
                                return Err(bad(
                                    &format!("input[{i}].output[{k}].type"),
                                    "only text parts are supported in a function_call_output",
                                ))
                            }
                        }
                    }
                    s
                }
                None | Some(Value::Null) => return Err(GatewayError::missing(&format!("input[{i}].output"))),
                Some(_) => {
                    return Err(bad(&format!("input[{i}].output"), "'output' must be a string or an array of parts"))
                }
            };
            out.push(jobj([
                ("role", jstr("tool")),
                ("tool_call_id", jstr(call_id)),
                ("content", Value::String(content)),
            ]));
            Ok(())
        }
        // The model's own reasoning from an earlier turn: it has no place in the pivot.
        Some("reasoning") => Ok(()),
        Some(other) => {
            Err(bad(&format!("input[{i}].type"), format!("input items of type '{other}' are not supported")))
        }
    }
}

/// `{"role": role, "content": content}`.
fn message(role: &str, content: Value) -> Value {
    jobj([("role", jstr(role)), ("content", content)])
}

/// The input message `input[i]` (`role` and `content`) appended to the pivot messages.
fn message_to_pivot(i: usize, o: &Map<String, Value>, out: &mut Vec<Value>) -> Result<(), GatewayError> {
    let role = req_str_at(o.get("role"), format_args!("input[{i}].role"))?;
    let role = match role {
        "user" | "assistant" | "system" => role,
        "developer" => "system",
        other => return Err(bad(&format!("input[{i}].role"), format!("unknown role '{other}'"))),
    };
    let content = match o.get("content") {
        Some(Value::String(s)) => Value::String(s.clone()),
        Some(Value::Array(parts)) => {
            let mut list = Vec::with_capacity(parts.len());
            for (k, part) in parts.iter().enumerate() {
                let ty = req_str_at(part.get("type"), format_args!("input[{i}].content[{k}].type"))?;
                match ty {
                    "input_text" | "output_text" | "refusal" => {
                        let field = if ty == "refusal" { "refusal" } else { "text" };
                        list.push(pivot::text_part(req_str_at(
                            part.get(field),
                            format_args!("input[{i}].content[{k}].{field}"),
                        )?));
                    }
                    "input_image" if role == "user" => {
                        let url = opt_str_at(part.get("image_url"), format_args!("input[{i}].content[{k}].image_url"))?
                            .ok_or_else(|| {
                                bad(
                                    &format!("input[{i}].content[{k}].image_url"),
                                    "an input_image needs 'image_url' (file ids are not supported)",
                                )
                            })?;
                        let mut image = Map::new();
                        ins(&mut image, "url", jstr(url));
                        if let Some(d) = opt_str_at(part.get("detail"), format_args!("input[{i}].content[{k}].detail"))?
                        {
                            ins(&mut image, "detail", jstr(d));
                        }
                        list.push(jobj([("type", jstr("image_url")), ("image_url", Value::Object(image))]));
                    }
                    other => {
                        return Err(bad(
                            &format!("input[{i}].content[{k}].type"),
                            format!("content parts of type '{other}' are not supported in a {role} message"),
                        ))
                    }
                }
            }
            if role == "user" {
                Value::Array(list)
            } else {
                // System and assistant content is text only in every dialect.
                pivot::texts_to_content(pivot::content_texts(Some(&Value::Array(list))))
            }
        }
        None | Some(Value::Null) => return Err(GatewayError::missing(&format!("input[{i}].content"))),
        Some(_) => return Err(bad(&format!("input[{i}].content"), "'content' must be a string or an array of parts")),
    };
    out.push(message(role, content));
    Ok(())
}

/// Function `tools` -> pivot tools. Whether there are any.
fn tools_to_pivot(v: Option<&Value>, out: &mut Map<String, Value>) -> Result<bool, GatewayError> {
    let Some(tools) = opt_array(v, "tools")? else { return Ok(false) };
    let mut list = Vec::with_capacity(tools.len());
    for (i, t) in tools.iter().enumerate() {
        let ty = req_str_at(t.get("type"), format_args!("tools[{i}].type"))?;
        if ty != "function" {
            return Err(bad(
                &format!("tools[{i}].type"),
                format!("tools of type '{ty}' are not supported (only 'function')"),
            ));
        }
        let mut f = Map::new();
        ins(&mut f, "name", jstr(req_str_at(t.get("name"), format_args!("tools[{i}].name"))?));
        if let Some(d) = opt_str_at(t.get("description"), format_args!("tools[{i}].description"))? {
            ins(&mut f, "description", jstr(d));
        }
        if let Some(params) = opt_object_at(t.get("parameters"), format_args!("tools[{i}].parameters"))? {
            ins(&mut f, "parameters", Value::Object(params.clone()));
        }
        if let Some(s) = opt_bool_at(t.get("strict"), format_args!("tools[{i}].strict"))? {
            ins(&mut f, "strict", Value::Bool(s));
        }
        list.push(jobj([("type", jstr("function")), ("function", Value::Object(f))]));
    }
    if list.is_empty() {
        return Ok(false);
    }
    ins(out, "tools", Value::Array(list));
    Ok(true)
}

/// `tool_choice` -> the pivot's.
fn tool_choice_to_pivot(v: Option<&Value>) -> Result<Option<Value>, GatewayError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            "auto" | "none" | "required" => Ok(Some(jstr(s))),
            other => Err(bad("tool_choice", format!("unknown tool_choice '{other}'"))),
        },
        Some(Value::Object(o)) => match req_str(o.get("type"), "tool_choice.type")? {
            "function" => {
                let name = req_str(o.get("name"), "tool_choice.name")?;
                Ok(Some(jobj([("type", jstr("function")), ("function", jobj([("name", jstr(name))]))])))
            }
            other => Err(bad("tool_choice.type", format!("tool_choice of type '{other}' is not supported"))),
        },
        Some(_) => Err(bad("tool_choice", "'tool_choice' must be a string or an object")),
    }
}

/// `text.format` -> the pivot's `response_format` (`None` for plain text).
fn format_to_pivot(v: Option<&Value>) -> Result<Option<Value>, GatewayError> {
    let Some(f) = opt_object(v, "text.format")? else { return Ok(None) };
    match req_str(f.get("type"), "text.format.type")? {
        "text" => Ok(None),
        "json_object" => Ok(Some(jobj([("type", jstr("json_object"))]))),
        "json_schema" => {
            let mut js = Map::new();
            ins(&mut js, "name", jstr(req_str(f.get("name"), "text.format.name")?));
            let schema = opt_object(f.get("schema"), "text.format.schema")?
                .ok_or_else(|| GatewayError::missing("text.format.schema"))?;
            ins(&mut js, "schema", Value::Object(schema.clone()));
            if let Some(d) = opt_str(f.get("description"), "text.format.description")? {
                ins(&mut js, "description", jstr(d));
            }
            if let Some(s) = opt_bool(f.get("strict"), "text.format.strict")? {
                ins(&mut js, "strict", Value::Bool(s));
            }
            Ok(Some(jobj([("type", jstr("json_schema")), ("json_schema", Value::Object(js))])))
        }
        other => Err(bad("text.format.type", format!("unknown text.format type '{other}'"))),
    }
}

/// The request's settings a `response` object repeats, as the client sent them (validated by
/// `request_to_pivot`): `instructions`, `max_output_tokens`, `temperature`, `top_p`,
/// `tool_choice`, `tools`, `parallel_tool_calls`, `metadata`, `text` and `reasoning.effort`.
/// Taken out of the request parsed at admission: nothing is parsed again for the reply.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Echo(Map<String, Value>);

impl Echo {
    /// The settings moved out of a request that `request_to_pivot` accepted.
    pub fn from_request(mut body: Map<String, Value>) -> Self {
        let mut e = Map::new();
        for field in ["instructions", "max_output_tokens", "temperature", "top_p", "tool_choice", "tools"] {
            if let Some(v) = body.remove(field).filter(|v| !v.is_null()) {
                ins(&mut e, field, v);
            }
        }
        if let Some(v) = body.remove("parallel_tool_calls").filter(Value::is_boolean) {
            ins(&mut e, "parallel_tool_calls", v);
        }
        if let Some(v) = body.remove("metadata").filter(Value::is_object) {
            ins(&mut e, "metadata", v);
        }
        if let Some(Value::Object(mut text)) = body.remove("text") {
            if text.get("format").is_none_or(Value::is_null) {
                ins(&mut text, "format", json!({"type": "text"}));
            }
            ins(&mut e, "text", Value::Object(text));
        }
        let effort = body.get("reasoning").and_then(|r| r.get("effort")).filter(|v| v.is_string());
        if let Some(effort) = effort {
            ins(&mut e, "reasoning", json!({"effort": effort, "summary": null}));
        }
        Echo(e)
    }
}

/// The response id for a pivot id: `resp_` and the id without its own prefix.
pub(super) fn response_id(pivot_id: Option<&str>) -> String {
    let bare = pivot::bare_id(pivot_id);
    let bare = bare.strip_prefix("resp_").unwrap_or(bare);
    if bare.is_empty() {
        "resp_tollgate".to_string()
    } else {
        format!("resp_{bare}")
    }
}

/// Status and `incomplete_details` for a finish reason.
pub(super) fn status_of(finish: Option<Finish>) -> (&'static str, Value) {
    match finish {
        Some(Finish::Length) => ("incomplete", json!({"reason": "max_output_tokens"})),
        Some(Finish::ContentFilter) => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    }
}

/// A `response` object around `output`, repeating the request's settings.
pub(super) fn response_object(
    id: &str,
    created_at: u64,
    model: &str,
    status: &str,
    output: Vec<Value>,
    echo: Option<&Echo>,
) -> Value {
    let mut r = json!({
        "id": id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": null,
        "incomplete_details": null,
        "instructions": null,
        "max_output_tokens": null,
        "model": model,
        "output": output,
        "parallel_tool_calls": true,
        "previous_response_id": null,
        "reasoning": {"effort": null, "summary": null},
        "store": false,
        "temperature": null,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": null,
        "truncation": "disabled",
        "usage": null,
        "metadata": {},
    });
    if let (Some(o), Some(Echo(e))) = (r.as_object_mut(), echo) {
        for (k, v) in e {
            o.insert(k.clone(), v.clone());
        }
    }
    r
}

/// An `output_text` content part.
pub(super) fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

/// A message output item.
pub(super) fn message_item(id: &str, status: &str, content: Vec<Value>) -> Value {
    json!({"id": id, "type": "message", "status": status, "role": "assistant", "content": content})
}

/// A function-call output item.
pub(super) fn call_item(id: &str, call_id: &str, name: &str, arguments: &str, status: &str) -> Value {
    json!({"id": id, "type": "function_call", "status": status, "call_id": call_id, "name": name, "arguments": arguments})
}

/// An OpenAI `chat.completion` -> the `response` object the client expects (first choice),
/// repeating the request's settings from `echo`.
pub fn response_from_pivot(v: &Value, client_model: &str, created_at: u64, echo: Option<&Echo>) -> Value {
    let id = response_id(v.get("id").and_then(Value::as_str));
    let bare = id.strip_prefix("resp_").unwrap_or(&id).to_string();
    let choice = v.get("choices").and_then(|c| c.get(0));
    let msg = choice.and_then(|c| c.get("message"));
    let mut output: Vec<Value> = Vec::new();
    let mut content = Vec::new();
    let text = pivot::content_text(msg.and_then(|m| m.get("content")));
    if !text.is_empty() {
        content.push(output_text(&text));
    }
    if let Some(r) = msg.and_then(|m| m.get("refusal")).and_then(Value::as_str).filter(|r| !r.is_empty()) {
        content.push(json!({"type": "refusal", "refusal": r}));
    }
    if !content.is_empty() {
        output.push(message_item(&format!("msg_{bare}"), "completed", content));
    }
    let calls = msg.and_then(|m| m.get("tool_calls")).and_then(Value::as_array);
    for (k, tc) in calls.map(|c| c.as_slice()).unwrap_or(&[]).iter().enumerate() {
        let f = tc.get("function");
        let args = match f.and_then(|f| f.get("arguments")) {
            Some(Value::String(s)) => s.clone(),
            Some(o @ Value::Object(_)) => o.to_string(),
            _ => "{}".to_string(),
        };
        let call_id = tc.get("id").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| format!("call_{k}"));
        let name = f.and_then(|f| f.get("name")).and_then(Value::as_str).unwrap_or("");
        output.push(call_item(&format!("fc_{bare}_{k}"), &call_id, name, &args, "completed"));
    }
    let finish = choice.and_then(|c| c.get("finish_reason")).and_then(Value::as_str).map(Finish::from_openai);
    let (status, details) = status_of(finish);
    let mut r = response_object(&id, created_at, client_model, status, output, echo);
    if let Some(o) = r.as_object_mut() {
        ins(o, "incomplete_details", details);
        if let Some(u) = pivot::usage_of(v) {
            ins(o, "usage", usage_json(&u));
        }
    }
    r
}
