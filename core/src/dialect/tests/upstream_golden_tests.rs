//! The upstream request builders (`request_from_pivot` of Anthropic, Gemini and the Responses
//! API) against a golden file: every output byte and every refusal (code, param, message) of a
//! corpus of pivot requests that covers each branch. `TOLLGATE_BLESS=1` rewrites the file.
use serde_json::{Map, Value};

use super::{anthropic, gemini, responses};

const CORPUS: &[(&str, &str)] = &[
    ("plain", r#"{"model":"m","messages":[{"role":"user","content":"hi \"there\" \u00e9\u2028 \n"}]}"#),
    ("stream-max", r#"{"model":"m","stream":true,"max_tokens":64,"messages":[{"role":"user","content":"hi"}]}"#),
    (
        "max-completion",
        r#"{"model":"m","max_completion_tokens":9,"max_tokens":64,"messages":[{"role":"user","content":"hi"}]}"#,
    ),
    (
        "sampling",
        r#"{"model":"m","temperature":0.7,"top_p":0.9,"top_k":40,"seed":7,"presence_penalty":-0.5,"frequency_penalty":1e-3,"n":1,"user":"u-1","messages":[{"role":"user","content":"hi"}]}"#,
    ),
    ("temp-high", r#"{"model":"m","temperature":1.5,"messages":[{"role":"user","content":"hi"}]}"#),
    ("temp-int", r#"{"model":"m","temperature":1,"top_p":1.0,"messages":[{"role":"user","content":"hi"}]}"#),
    ("temp-big", r#"{"model":"m","temperature":1e300,"messages":[{"role":"user","content":"hi"}]}"#),
    ("stop-str", r#"{"model":"m","stop":"END","messages":[{"role":"user","content":"hi"}]}"#),
    ("stop-arr", r#"{"model":"m","stop":["a","b"],"messages":[{"role":"user","content":"hi"}]}"#),
    ("stop-empty", r#"{"model":"m","stop":[],"messages":[{"role":"user","content":"hi"}]}"#),
    ("stop-null", r#"{"model":"m","stop":null,"messages":[{"role":"user","content":"hi"}]}"#),
    ("n2", r#"{"model":"m","n":2,"messages":[{"role":"user","content":"hi"}]}"#),
    ("logprobs", r#"{"model":"m","logprobs":true,"messages":[{"role":"user","content":"hi"}]}"#),
    (
        "systems",
        r#"{"model":"m","messages":[{"role":"system","content":"s1"},{"role":"developer","content":[{"type":"text","text":"s2"}]},{"role":"user","content":"hi"}]}"#,
    ),
    ("one-system", r#"{"model":"m","messages":[{"role":"system","content":"s1"},{"role":"user","content":"hi"}]}"#),
    ("only-system", r#"{"model":"m","messages":[{"role":"system","content":"s1"}]}"#),
    ("no-messages", r#"{"model":"m"}"#),
    ("messages-not-array", r#"{"model":"m","messages":{}}"#),
    ("message-not-object", r#"{"model":"m","messages":[7]}"#),
    ("no-role", r#"{"model":"m","messages":[{"content":"x"}]}"#),
    ("bad-role", r#"{"model":"m","messages":[{"role":"robot","content":"x"}]}"#),
    ("user-null", r#"{"model":"m","messages":[{"role":"user","content":null},{"role":"user"}]}"#),
    ("user-number", r#"{"model":"m","messages":[{"role":"user","content":5}]}"#),
    (
        "user-parts",
        r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"text":"b"},{"type":"image_url","image_url":{"url":"https://x.test/a.PNG?x=1","detail":"high"}},{"type":"image_url","image_url":"https://x.test/b.gif"},{"type":"image_url","image_url":{"url":"data:image/webp;base64,AAAA"}},{"type":"image_url","image_url":{"url":"https://x.test/c.webp#f"}},{"type":"image_url","image_url":{"url":"https://x.test/d"}}]}]}"#,
    ),
    (
        "user-audio",
        r#"{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"QUJD","format":"mp3"}},{"type":"input_audio","input_audio":{"data":"QUJD"}}]}]}"#,
    ),
    (
        "user-audio-bad",
        r#"{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"format":"mp3"}}]}]}"#,
    ),
    (
        "user-file",
        r#"{"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"file_data":"data:application/pdf;base64,JVBERi0="}}]}]}"#,
    ),
    (
        "user-file-url",
        r#"{"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"file_data":"https://x.test/a.pdf"}}]}]}"#,
    ),
    ("user-file-missing", r#"{"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{}}]}]}"#),
    ("user-part-unknown", r#"{"model":"m","messages":[{"role":"user","content":[{"type":"video","video":{}}]}]}"#),
    ("user-text-missing", r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text"}]}]}"#),
    (
        "user-image-missing",
        r#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{}}]}]}"#,
    ),
    (
        "assistant-text",
        r#"{"model":"m","messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"assistant","content":""},{"role":"assistant","content":[{"type":"text","text":"c"},{"type":"text","text":""}]},{"role":"assistant","content":null},{"role":"user","content":"d"}]}"#,
    ),
    (
        "tools-roundtrip",
        r#"{"model":"m","messages":[{"role":"user","content":"w?"},{"role":"assistant","content":"let me see","tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\",\"n\":1.50}"}},{"id":"call_2","type":"function","function":{"name":"get_time","arguments":{"tz":"CET"}},"extra_content":{"google":{"thought_signature":"sig=="}}},{"type":"function","function":{"name":"noid"}}]},{"role":"tool","tool_call_id":"call_1","content":"{\"temp\":21}"},{"role":"tool","tool_call_id":"call_2","content":"12:00"},{"role":"tool","tool_call_id":"call_2","content":[{"type":"text","text":"x"},{"type":"text","text":"y"}]},{"role":"user","content":"thanks"},{"role":"user","content":[{"type":"text","text":"again"}]}]}"#,
    ),
    (
        "tool-then-user-parts",
        r#"{"model":"m","messages":[{"role":"user","content":"q"},{"role":"assistant","tool_calls":[{"id":"c","function":{"name":"f","arguments":"not json"}}]},{"role":"tool","tool_call_id":"c","content":"[1,2]"},{"role":"user","content":[{"type":"text","text":"u"}]},{"role":"user","content":""}]}"#,
    ),
    (
        "tool-then-empty-user",
        r#"{"model":"m","messages":[{"role":"user","content":"q"},{"role":"assistant","tool_calls":[{"id":"c","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c","content":"r"},{"role":"user","content":""},{"role":"user","content":null}]}"#,
    ),
    (
        "tool-unknown-id",
        r#"{"model":"m","messages":[{"role":"user","content":"q"},{"role":"tool","tool_call_id":"zz","content":"r"}]}"#,
    ),
    (
        "tool-unknown-id-named",
        r#"{"model":"m","messages":[{"role":"user","content":"q"},{"role":"tool","tool_call_id":"zz","name":"fn","content":"r"}]}"#,
    ),
    ("tool-no-id", r#"{"model":"m","messages":[{"role":"user","content":"q"},{"role":"tool","content":"r"}]}"#),
    (
        "call-no-function",
        r#"{"model":"m","messages":[{"role":"user","content":"q"},{"role":"assistant","tool_calls":[{"id":"c"}]}]}"#,
    ),
    (
        "call-no-name",
        r#"{"model":"m","messages":[{"role":"user","content":"q"},{"role":"assistant","tool_calls":[{"id":"c","function":{}}]}]}"#,
    ),
    (
        "calls-not-array",
        r#"{"model":"m","messages":[{"role":"user","content":"q"},{"role":"assistant","tool_calls":{}}]}"#,
    ),
    (
        "call-id-number",
        r#"{"model":"m","messages":[{"role":"user","content":"q"},{"role":"assistant","tool_calls":[{"id":5,"function":{"name":"f"}}]}]}"#,
    ),
    (
        "tools",
        r#"{"model":"m","messages":[{"role":"user","content":"q"}],"tools":[{"type":"function","function":{"name":"f","description":"does f","parameters":{"$schema":"x","type":"object","additionalProperties":false,"strict":true,"properties":{"a":{"type":"object","additionalProperties":true,"properties":{"strict":{"type":"string"}}},"b":{"type":"array","items":{"$schema":"y","type":"string"}}},"required":["a"]},"strict":true}},{"type":"function","function":{"name":"g"}}]}"#,
    ),
    ("tools-empty", r#"{"model":"m","messages":[{"role":"user","content":"q"}],"tools":[],"tool_choice":"auto"}"#),
    ("tools-bad", r#"{"model":"m","messages":[{"role":"user","content":"q"}],"tools":[{"type":"function"}]}"#),
    ("tools-not-array", r#"{"model":"m","messages":[{"role":"user","content":"q"}],"tools":{"a":1}}"#),
    (
        "tool-params-bad",
        r#"{"model":"m","messages":[{"role":"user","content":"q"}],"tools":[{"function":{"name":"f","parameters":"x"}}]}"#,
    ),
    (
        "choice-auto",
        r#"{"model":"m","messages":[{"role":"user","content":"q"}],"tools":[{"function":{"name":"f"}}],"tool_choice":"auto"}"#,
    ),
    (
        "choice-required",
        r#"{"model":"m","messages":[{"role":"user","content":"q"}],"tools":[{"function":{"name":"f"}}],"tool_choice":"required","parallel_tool_calls":false}"#,
    ),
    (
        "choice-none",
        r#"{"model":"m","messages":[{"role":"user","content":"q"}],"tools":[{"function":{"name":"f"}}],"tool_choice":"none","parallel_tool_calls":false}"#,
    ),
    (
        "choice-null-noparallel",
        r#"{"model":"m","messages":[{"role":"user","content":"q"}],"tools":[{"function":{"name":"f"}}],"tool_choice":null,"parallel_tool_calls":false}"#,
    ),
    (
        "choice-parallel-true",
        r#"{"model":"m","messages":[{"role":"user","content":"q"}],"tools":[{"function":{"name":"f"}}],"parallel_tool_calls":true}"#,
    ),
    (
        "choice-fn",
        r#"{"model":"m","messages":[{"role":"user","content":"q"}],"tools":[{"function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"f"}},"parallel_tool_calls":false}"#,
    ),
    (
        "choice-fn-bad",
        r#"{"model":"m","messages":[{"role":"user","content":"q"}],"tools":[{"function":{"name":"f"}}],"tool_choice":{"type":"function"}}"#,
    ),
    (
        "choice-unknown",
        r#"{"model":"m","messages":[{"role":"user","content":"q"}],"tools":[{"function":{"name":"f"}}],"tool_choice":"sometimes"}"#,
    ),
    (
        "choice-number",
        r#"{"model":"m","messages":[{"role":"user","content":"q"}],"tools":[{"function":{"name":"f"}}],"tool_choice":3}"#,
    ),
    ("choice-no-tools", r#"{"model":"m","messages":[{"role":"user","content":"q"}],"tool_choice":"required"}"#),
    ("parallel-bad", r#"{"model":"m","messages":[{"role":"user","content":"q"}],"parallel_tool_calls":"no"}"#),
    ("rf-json", r#"{"model":"m","messages":[{"role":"user","content":"q"}],"response_format":{"type":"json_object"}}"#),
    (
        "rf-schema",
        r#"{"model":"m","messages":[{"role":"user","content":"q"}],"response_format":{"type":"json_schema","json_schema":{"name":"s","strict":true,"schema":{"type":"object","properties":{"x":{"type":"integer"}}}}}}"#,
    ),
    (
        "rf-schema-none",
        r#"{"model":"m","messages":[{"role":"user","content":"q"}],"response_format":{"type":"json_schema","json_schema":{"name":"s"}}}"#,
    ),
    ("rf-text", r#"{"model":"m","messages":[{"role":"user","content":"q"}],"response_format":{"type":"text"}}"#),
    ("rf-bad", r#"{"model":"m","messages":[{"role":"user","content":"q"}],"response_format":"json"}"#),
    ("reasoning", r#"{"model":"m","reasoning_effort":"low","messages":[{"role":"user","content":"q"}]}"#),
    ("bad-numbers", r#"{"model":"m","temperature":"hot","messages":[{"role":"user","content":"q"}]}"#),
    ("bad-topk", r#"{"model":"m","top_k":-1,"messages":[{"role":"user","content":"q"}]}"#),
    ("bad-max", r#"{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"q"}]}"#),
    ("bad-max-completion", r#"{"model":"m","max_completion_tokens":2.5,"messages":[{"role":"user","content":"q"}]}"#),
    ("bad-stop", r#"{"model":"m","stop":[1],"messages":[{"role":"user","content":"q"}]}"#),
    ("bad-user", r#"{"model":"m","user":5,"messages":[{"role":"user","content":"q"}]}"#),
    ("bad-stream", r#"{"model":"m","stream":"yes","messages":[{"role":"user","content":"q"}]}"#),
    ("bad-n", r#"{"model":"m","n":0,"messages":[{"role":"user","content":"q"}]}"#),
    (
        "many-errors",
        r#"{"model":"m","temperature":"x","top_k":"y","tools":5,"messages":[{"role":"user","content":5}]}"#,
    ),
];

fn outcome(r: Result<Value, crate::errors::GatewayError>) -> String {
    match r {
        Ok(v) => serde_json::to_string(&v).unwrap(),
        Err(e) => format!("ERR {} {:?} {}", e.code.as_str(), e.param, e.message),
    }
}

fn render() -> String {
    let mut out = String::new();
    for (name, body) in CORPUS {
        let m: Map<String, Value> = serde_json::from_str(body).unwrap();
        out.push_str(&format!("{name} anthropic {}\n", outcome(anthropic::request_from_pivot(&m, "up-a", 4096))));
        out.push_str(&format!("{name} gemini {}\n", outcome(gemini::request_from_pivot(&m, "up-g"))));
        out.push_str(&format!("{name} responses {}\n", outcome(responses::request_from_pivot(&m, "up-r"))));
    }
    out
}

#[test]
fn upstream_requests_match_the_golden_file() {
    let got = render();
    assert_golden(concat!(env!("CARGO_MANIFEST_DIR"), "/src/dialect/tests/upstream_golden.txt"), &got);
    assert_eq!(got.lines().count(), CORPUS.len() * 3);
}

/// `got` line for line against the golden file at `path` (rewritten first with `TOLLGATE_BLESS=1`).
pub(super) fn assert_golden(path: &str, got: &str) {
    if std::env::var_os("TOLLGATE_BLESS").is_some() {
        std::fs::write(path, got).unwrap();
    }
    let want = std::fs::read_to_string(path).unwrap();
    for (g, w) in got.lines().zip(want.lines()) {
        assert_eq!(g, w);
    }
    assert_eq!(got.lines().count(), want.lines().count());
}
