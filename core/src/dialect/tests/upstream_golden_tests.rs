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
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/dialect/tests/upstream_golden.txt");
    if std::env::var_os("TOLLGATE_BLESS").is_some() {
        std::fs::write(path, &got).unwrap();
    }
    let want = std::fs::read_to_string(path).unwrap();
    for (g, w) in got.lines().zip(want.lines()) {
        assert_eq!(g, w);
    }
    assert_eq!(got.lines().count(), want.lines().count());
    assert_eq!(got.lines().count(), CORPUS.len() * 3);
}

/// Requests of the Responses API front: their pivots and refusals.
const RESPONSES_FRONT: &[(&str, &str)] = &[
    ("plain", r#"{"model":"m","input":"hi \"x\" \u00e9"}"#),
    (
        "full",
        r#"{"model":"m","instructions":"be brief","input":[{"role":"developer","content":"sys"},{"type":"message","role":"user","content":[{"type":"input_text","text":"a"},{"type":"input_image","image_url":"https://x.test/i.png","detail":"low"},{"type":"input_image","image_url":"data:image/png;base64,AA=="}]},{"role":"assistant","content":[{"type":"output_text","text":"b"},{"type":"refusal","refusal":"no"}]},{"type":"function_call","call_id":"c1","name":"f","arguments":"{\"a\":1}"},{"type":"function_call","call_id":"c2","name":"g","arguments":"{}"},{"type":"function_call_output","call_id":"c1","output":"r1"},{"type":"function_call_output","call_id":"c2","output":[{"type":"input_text","text":"x"},{"type":"output_text","text":"y"}]},{"type":"reasoning","summary":[]},{"role":"user","content":"go"}],"max_output_tokens":100,"temperature":0.5,"top_p":1,"user":"u","tools":[{"type":"function","name":"f","description":"d","parameters":{"type":"object"},"strict":true},{"type":"function","name":"g"}],"tool_choice":{"type":"function","name":"f"},"parallel_tool_calls":false,"text":{"format":{"type":"json_schema","name":"s","schema":{"type":"object"},"description":"dd","strict":true}},"reasoning":{"effort":"high"},"stream":true}"#,
    ),
    (
        "call-first",
        r#"{"model":"m","input":[{"type":"function_call","call_id":"c1","name":"f","arguments":"{}"},{"role":"user","content":"x"}]}"#,
    ),
    (
        "choice-str",
        r#"{"model":"m","input":"x","tools":[{"type":"function","name":"f"}],"tool_choice":"required","text":{"format":{"type":"json_object"}}}"#,
    ),
    (
        "choice-no-tools",
        r#"{"model":"m","input":"x","tool_choice":"auto","parallel_tool_calls":true,"text":{"format":{"type":"text"}}}"#,
    ),
    ("no-input", r#"{"model":"m"}"#),
    ("only-system", r#"{"model":"m","instructions":"s","input":[{"role":"system","content":"x"}]}"#),
    ("input-number", r#"{"model":"m","input":5}"#),
    ("item-not-object", r#"{"model":"m","input":[5]}"#),
    ("item-type-number", r#"{"model":"m","input":[{"type":5}]}"#),
    ("item-type-unknown", r#"{"model":"m","input":[{"type":"web_search_call"}]}"#),
    ("call-no-id", r#"{"model":"m","input":[{"type":"function_call","name":"f","arguments":"{}"}]}"#),
    ("call-no-name", r#"{"model":"m","input":[{"type":"function_call","call_id":"c","arguments":"{}"}]}"#),
    ("call-args-object", r#"{"model":"m","input":[{"type":"function_call","call_id":"c","name":"f","arguments":{}}]}"#),
    ("output-no-id", r#"{"model":"m","input":[{"type":"function_call_output","output":"r"}]}"#),
    ("output-missing", r#"{"model":"m","input":[{"type":"function_call_output","call_id":"c"}]}"#),
    ("output-number", r#"{"model":"m","input":[{"type":"function_call_output","call_id":"c","output":3}]}"#),
    (
        "output-part-image",
        r#"{"model":"m","input":[{"type":"function_call_output","call_id":"c","output":[{"type":"input_image"}]}]}"#,
    ),
    (
        "output-part-no-text",
        r#"{"model":"m","input":[{"type":"function_call_output","call_id":"c","output":[{"type":"input_text"}]}]}"#,
    ),
    ("role-missing", r#"{"model":"m","input":[{"content":"x"}]}"#),
    ("role-unknown", r#"{"model":"m","input":[{"role":"tool","content":"x"}]}"#),
    ("content-missing", r#"{"model":"m","input":[{"role":"user"}]}"#),
    ("content-number", r#"{"model":"m","input":[{"role":"user","content":1}]}"#),
    ("part-no-type", r#"{"model":"m","input":[{"role":"user","content":[{"text":"x"}]}]}"#),
    ("part-no-text", r#"{"model":"m","input":[{"role":"user","content":[{"type":"input_text"}]}]}"#),
    ("part-no-refusal", r#"{"model":"m","input":[{"role":"assistant","content":[{"type":"refusal","text":"x"}]}]}"#),
    ("image-no-url", r#"{"model":"m","input":[{"role":"user","content":[{"type":"input_image","file_id":"f"}]}]}"#),
    ("image-url-number", r#"{"model":"m","input":[{"role":"user","content":[{"type":"input_image","image_url":1}]}]}"#),
    (
        "image-detail-number",
        r#"{"model":"m","input":[{"role":"user","content":[{"type":"input_image","image_url":"u","detail":1}]}]}"#,
    ),
    (
        "image-assistant",
        r#"{"model":"m","input":[{"role":"assistant","content":[{"type":"input_image","image_url":"u"}]}]}"#,
    ),
    ("tool-type", r#"{"model":"m","input":"x","tools":[{"type":"web_search"}]}"#),
    ("tool-no-type", r#"{"model":"m","input":"x","tools":[{"name":"f"}]}"#),
    ("tool-no-name", r#"{"model":"m","input":"x","tools":[{"type":"function"}]}"#),
    ("tool-desc-number", r#"{"model":"m","input":"x","tools":[{"type":"function","name":"f","description":1}]}"#),
    ("tool-params-string", r#"{"model":"m","input":"x","tools":[{"type":"function","name":"f","parameters":"p"}]}"#),
    ("tool-strict-string", r#"{"model":"m","input":"x","tools":[{"type":"function","name":"f","strict":"yes"}]}"#),
    ("tools-empty", r#"{"model":"m","input":"x","tools":[],"tool_choice":"auto"}"#),
    ("choice-bad", r#"{"model":"m","input":"x","tool_choice":"sometimes"}"#),
    ("choice-type", r#"{"model":"m","input":"x","tool_choice":{"type":"mcp"}}"#),
    ("choice-no-name", r#"{"model":"m","input":"x","tool_choice":{"type":"function"}}"#),
    ("format-bad", r#"{"model":"m","input":"x","text":{"format":{"type":"xml"}}}"#),
    ("format-no-schema", r#"{"model":"m","input":"x","text":{"format":{"type":"json_schema","name":"s"}}}"#),
    ("stateful", r#"{"model":"m","input":"x","previous_response_id":"r"}"#),
    ("store", r#"{"model":"m","input":"x","store":true}"#),
    ("temp", r#"{"model":"m","input":"x","temperature":3}"#),
    ("max-bad", r#"{"model":"m","input":"x","max_output_tokens":0}"#),
    ("effort-number", r#"{"model":"m","input":"x","reasoning":{"effort":1}}"#),
];

/// Requests of the Gemini front (model `m`, streamed or not): their pivots and refusals.
const GEMINI_FRONT: &[(&str, &str)] = &[
    ("plain", r#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"generationConfig":{"maxOutputTokens":1000}}"#),
    (
        "full",
        r#"{"systemInstruction":{"parts":[{"text":"s1"},{"text":"s2"}]},"contents":[{"parts":[{"text":"a"},{"text":"t","thought":true},{"inlineData":{"mimeType":"image/png","data":"AA=="}},{"inlineData":{"mimeType":"audio/mpeg","data":"BB"}},{"inlineData":{"mimeType":"audio/x-wav","data":"CC"}},{"inlineData":{"mimeType":"application/pdf","data":"DD"}},{"fileData":{"fileUri":"https://x.test/i.png","mimeType":"image/png"}},{"fileData":{"fileUri":"https://x.test/j"}}]},{"role":"model","parts":[{"text":"b"},{"text":"th","thought":true},{"functionCall":{"name":"f","args":{"a":1}},"thoughtSignature":"sig"},{"functionCall":{"name":"g","id":"gid"}},{"thoughtSignature":"x"}]},{"role":"function","parts":[{"functionResponse":{"name":"f","response":{"r":1}}},{"functionResponse":{"name":"g","id":"gid"}}]},{"role":"user","parts":[{"text":"go"}]}],"generationConfig":{"temperature":0.5,"topP":0.9,"topK":3,"seed":1,"presencePenalty":0.1,"frequencyPenalty":0.2,"maxOutputTokens":9,"stopSequences":["x"],"candidateCount":2,"responseMimeType":"application/json","responseSchema":{"type":"OBJECT","properties":{"a":{"type":"STRING"}}}},"tools":[{"functionDeclarations":[{"name":"f","description":"d","parameters":{"type":"OBJECT"}},{"name":"g","parametersJsonSchema":{"type":"object"}},{"name":"h"}]}],"toolConfig":{"functionCallingConfig":{"mode":"any","allowedFunctionNames":["f"]}}}"#,
    ),
    (
        "sys-string",
        r#"{"systemInstruction":"be brief","contents":[{"parts":[{"text":"x"}]}],"generationConfig":{"responseMimeType":"application/json","responseJsonSchema":{"type":"object"}}}"#,
    ),
    (
        "json-plain",
        r#"{"contents":[{"parts":[{"text":"x"}]}],"generationConfig":{"responseMimeType":"application/json","stopSequences":[]}}"#,
    ),
    (
        "modes",
        r#"{"contents":[{"parts":[{"text":"x"}]}],"tools":[{"functionDeclarations":[{"name":"f"}]}],"toolConfig":{"functionCallingConfig":{"mode":"NONE"}}}"#,
    ),
    (
        "mode-any",
        r#"{"contents":[{"parts":[{"text":"x"}]}],"tools":[{"functionDeclarations":[{"name":"f"}]}],"toolConfig":{"functionCallingConfig":{"mode":"ANY"}}}"#,
    ),
    (
        "mode-auto-no-tools",
        r#"{"contents":[{"parts":[{"text":"x"}]}],"toolConfig":{"functionCallingConfig":{"mode":"AUTO"}}}"#,
    ),
    (
        "mode-bad",
        r#"{"contents":[{"parts":[{"text":"x"}]}],"toolConfig":{"functionCallingConfig":{"mode":"SOMETIMES"}}}"#,
    ),
    ("empty-user", r#"{"contents":[{"parts":[]}]}"#),
    ("no-contents", r#"{}"#),
    ("contents-empty", r#"{"contents":[]}"#),
    ("content-not-object", r#"{"contents":[1]}"#),
    ("role-bad", r#"{"contents":[{"role":"system","parts":[{"text":"x"}]}]}"#),
    ("role-number", r#"{"contents":[{"role":1,"parts":[{"text":"x"}]}]}"#),
    ("parts-missing", r#"{"contents":[{"role":"user"}]}"#),
    ("parts-object", r#"{"contents":[{"role":"user","parts":{}}]}"#),
    ("part-not-object", r#"{"contents":[{"parts":[{"text":"x"},3]}]}"#),
    ("model-part-not-object", r#"{"contents":[{"parts":[{"text":"x"}]},{"role":"model","parts":["y"]}]}"#),
    ("text-number", r#"{"contents":[{"parts":[{"text":5}]}]}"#),
    ("model-text-number", r#"{"contents":[{"parts":[{"text":"q"}]},{"role":"model","parts":[{"text":5}]}]}"#),
    ("part-empty", r#"{"contents":[{"parts":[{}]}]}"#),
    ("model-part-empty", r#"{"contents":[{"parts":[{"text":"q"}]},{"role":"model","parts":[{}]}]}"#),
    ("call-in-user", r#"{"contents":[{"parts":[{"functionCall":{"name":"f"}}]}]}"#),
    ("call-no-name", r#"{"contents":[{"parts":[{"text":"q"}]},{"role":"model","parts":[{"functionCall":{}}]}]}"#),
    (
        "call-args-bad",
        r#"{"contents":[{"parts":[{"text":"q"}]},{"role":"model","parts":[{"functionCall":{"name":"f","args":[]}}]}]}"#,
    ),
    (
        "call-id-bad",
        r#"{"contents":[{"parts":[{"text":"q"}]},{"role":"model","parts":[{"functionCall":{"name":"f","id":1}}]}]}"#,
    ),
    (
        "call-sig-bad",
        r#"{"contents":[{"parts":[{"text":"q"}]},{"role":"model","parts":[{"functionCall":{"name":"f"},"thoughtSignature":1}]}]}"#,
    ),
    ("call-not-object", r#"{"contents":[{"parts":[{"text":"q"}]},{"role":"model","parts":[{"functionCall":"f"}]}]}"#),
    ("response-unmatched", r#"{"contents":[{"parts":[{"functionResponse":{"name":"f"}}]}]}"#),
    ("response-no-name", r#"{"contents":[{"parts":[{"functionResponse":{"id":"x"}}]}]}"#),
    ("response-id-bad", r#"{"contents":[{"parts":[{"functionResponse":{"name":"f","id":2}}]}]}"#),
    ("response-bad", r#"{"contents":[{"parts":[{"functionResponse":{"name":"f","id":"i","response":"r"}}]}]}"#),
    ("response-not-object", r#"{"contents":[{"parts":[{"functionResponse":"f"}]}]}"#),
    ("inline-no-mime", r#"{"contents":[{"parts":[{"inlineData":{"data":"AA"}}]}]}"#),
    ("inline-no-data", r#"{"contents":[{"parts":[{"inlineData":{"mimeType":"image/png"}}]}]}"#),
    ("inline-bad", r#"{"contents":[{"parts":[{"inlineData":"x"}]}]}"#),
    ("file-no-uri", r#"{"contents":[{"parts":[{"fileData":{"mimeType":"image/png"}}]}]}"#),
    ("file-not-image", r#"{"contents":[{"parts":[{"fileData":{"fileUri":"u","mimeType":"video/mp4"}}]}]}"#),
    ("file-mime-bad", r#"{"contents":[{"parts":[{"fileData":{"fileUri":"u","mimeType":3}}]}]}"#),
    ("sys-bad", r#"{"systemInstruction":3,"contents":[{"parts":[{"text":"x"}]}]}"#),
    ("sys-part-bad", r#"{"systemInstruction":{"parts":[1]},"contents":[{"parts":[{"text":"x"}]}]}"#),
    ("sys-part-no-text", r#"{"systemInstruction":{"parts":[{}]},"contents":[{"parts":[{"text":"x"}]}]}"#),
    ("gen-bad", r#"{"contents":[{"parts":[{"text":"x"}]}],"generationConfig":{"topP":"x"}}"#),
    ("gen-topk-bad", r#"{"contents":[{"parts":[{"text":"x"}]}],"generationConfig":{"topK":1.5}}"#),
    ("gen-max-bad", r#"{"contents":[{"parts":[{"text":"x"}]}],"generationConfig":{"maxOutputTokens":0}}"#),
    ("gen-stop-bad", r#"{"contents":[{"parts":[{"text":"x"}]}],"generationConfig":{"stopSequences":"x"}}"#),
    ("gen-count-bad", r#"{"contents":[{"parts":[{"text":"x"}]}],"generationConfig":{"candidateCount":99}}"#),
    ("gen-mime-bad", r#"{"contents":[{"parts":[{"text":"x"}]}],"generationConfig":{"responseMimeType":1}}"#),
    ("gen-seed-bad", r#"{"contents":[{"parts":[{"text":"x"}]}],"generationConfig":{"seed":"1"}}"#),
    ("tools-bad", r#"{"contents":[{"parts":[{"text":"x"}]}],"tools":[3]}"#),
    ("tools-search", r#"{"contents":[{"parts":[{"text":"x"}]}],"tools":[{"googleSearch":{}}]}"#),
    ("tools-decls-bad", r#"{"contents":[{"parts":[{"text":"x"}]}],"tools":[{"functionDeclarations":{}}]}"#),
    ("tools-decl-bad", r#"{"contents":[{"parts":[{"text":"x"}]}],"tools":[{"functionDeclarations":[1]}]}"#),
    ("tools-decl-no-name", r#"{"contents":[{"parts":[{"text":"x"}]}],"tools":[{"functionDeclarations":[{}]}]}"#),
    (
        "tools-decl-desc-bad",
        r#"{"contents":[{"parts":[{"text":"x"}]}],"tools":[{"functionDeclarations":[{"name":"f","description":1}]}]}"#,
    ),
    (
        "tools-decl-params-bad",
        r#"{"contents":[{"parts":[{"text":"x"}]}],"tools":[{"functionDeclarations":[{"name":"f","parameters":1}]}]}"#,
    ),
    (
        "tools-decl-schema-bad",
        r#"{"contents":[{"parts":[{"text":"x"}]}],"tools":[{"functionDeclarations":[{"name":"f","parametersJsonSchema":1}]}]}"#,
    ),
    (
        "tool-config-bad",
        r#"{"contents":[{"parts":[{"text":"x"}]}],"toolConfig":{"functionCallingConfig":{"allowedFunctionNames":"f"}}}"#,
    ),
];

/// Requests of the Anthropic front: their pivots and refusals.
const ANTHROPIC_FRONT: &[(&str, &str)] = &[
    ("plain", r#"{"model":"m","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}"#),
    (
        "full",
        r#"{"model":"m","max_tokens":64,"stream":true,"system":[{"type":"text","text":"s1"},{"type":"text","text":"s2"}],"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AA=="}},{"type":"image","source":{"type":"url","url":"https://x.test/i.png"}},{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JV"},"title":"t.pdf"},{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JV"}},{"type":"document","source":{"type":"text","data":"plain"}},{"type":"thinking","thinking":"x"}]},{"role":"assistant","content":[{"type":"text","text":"b"},{"type":"thinking","thinking":"t"},{"type":"tool_use","id":"tu1","name":"f","input":{"a":1}},{"type":"tool_use","id":"tu2","name":"g"}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"tu1","content":"r1","is_error":false},{"type":"tool_result","tool_use_id":"tu2","content":[{"type":"text","text":"x"},{"type":"image","source":{"type":"url","url":"u"}},{"type":"document","source":{"type":"text","data":"d"}}]},{"type":"text","text":"go"}]},{"role":"assistant","content":"ok"},{"role":"user","content":[{"type":"tool_result","tool_use_id":"z"}]}],"stop_sequences":["x"],"temperature":0.5,"top_p":0.9,"top_k":5,"metadata":{"user_id":"u"},"output_config":{"format":{"type":"json_schema","schema":{"type":"object"}}},"tools":[{"name":"f","description":"d","input_schema":{"type":"object"}},{"type":"custom","name":"g","input_schema":{}}],"tool_choice":{"type":"tool","name":"f","disable_parallel_tool_use":true}}"#,
    ),
    (
        "sys-string",
        r#"{"model":"m","max_tokens":1,"system":"be brief","messages":[{"role":"user","content":[]}],"stop_sequences":[]}"#,
    ),
    (
        "choices",
        r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],"tools":[{"name":"f","input_schema":{}}],"tool_choice":{"type":"none","disable_parallel_tool_use":true}}"#,
    ),
    (
        "choice-any",
        r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],"tools":[{"name":"f","input_schema":{}}],"tool_choice":{"type":"any"}}"#,
    ),
    (
        "choice-auto-no-tools",
        r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"auto"}}"#,
    ),
    (
        "choice-bad",
        r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"sometimes"}}"#,
    ),
    (
        "choice-tool-no-name",
        r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"tool"}}"#,
    ),
    (
        "empty-assistant",
        r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"},{"role":"assistant","content":[]}]}"#,
    ),
    ("no-max", r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#),
    ("no-messages", r#"{"model":"m","max_tokens":1}"#),
    ("messages-empty", r#"{"model":"m","max_tokens":1,"messages":[]}"#),
    ("message-not-object", r#"{"model":"m","max_tokens":1,"messages":[1]}"#),
    ("role-missing", r#"{"model":"m","max_tokens":1,"messages":[{"content":"x"}]}"#),
    ("role-bad", r#"{"model":"m","max_tokens":1,"messages":[{"role":"system","content":"x"}]}"#),
    ("content-missing", r#"{"model":"m","max_tokens":1,"messages":[{"role":"user"}]}"#),
    ("content-number", r#"{"model":"m","max_tokens":1,"messages":[{"role":"assistant","content":1}]}"#),
    ("block-not-object", r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[1]}]}"#),
    ("block-no-type", r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"text":"x"}]}]}"#),
    ("block-text-missing", r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"text"}]}]}"#),
    ("block-unknown", r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"video"}]}]}"#),
    (
        "block-tool-use-in-user",
        r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_use"}]}]}"#,
    ),
    (
        "block-result-in-assistant",
        r#"{"model":"m","max_tokens":1,"messages":[{"role":"assistant","content":[{"type":"tool_result"}]}]}"#,
    ),
    (
        "block-unknown-assistant",
        r#"{"model":"m","max_tokens":1,"messages":[{"role":"assistant","content":[{"type":"image"}]}]}"#,
    ),
    (
        "assistant-text-missing",
        r#"{"model":"m","max_tokens":1,"messages":[{"role":"assistant","content":[{"type":"text","text":3}]}]}"#,
    ),
    (
        "tool-use-no-id",
        r#"{"model":"m","max_tokens":1,"messages":[{"role":"assistant","content":[{"type":"tool_use","name":"f"}]}]}"#,
    ),
    (
        "tool-use-no-name",
        r#"{"model":"m","max_tokens":1,"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"i"}]}]}"#,
    ),
    (
        "tool-use-input-bad",
        r#"{"model":"m","max_tokens":1,"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"i","name":"f","input":[]}]}]}"#,
    ),
    ("image-no-source", r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"image"}]}]}"#),
    (
        "image-source-type",
        r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"file"}}]}]}"#,
    ),
    (
        "image-no-media",
        r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","data":"x"}}]}]}"#,
    ),
    (
        "image-no-data",
        r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png"}}]}]}"#,
    ),
    (
        "image-no-url",
        r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"url"}}]}]}"#,
    ),
    (
        "doc-source-type",
        r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"url"}}]}]}"#,
    ),
    (
        "doc-title-bad",
        r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"base64","media_type":"a","data":"b"},"title":1}]}]}"#,
    ),
    (
        "doc-text-no-data",
        r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"text"}}]}]}"#,
    ),
    (
        "result-no-id",
        r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_result","content":"x"}]}]}"#,
    ),
    (
        "result-content-bad",
        r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"i","content":3}]}]}"#,
    ),
    (
        "result-block-bad",
        r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"i","content":[{"type":"tool_use"}]}]}]}"#,
    ),
    (
        "result-block-not-object",
        r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"i","content":[1]}]}]}"#,
    ),
    (
        "result-text-missing",
        r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"i","content":[{"type":"text"}]}]}]}"#,
    ),
    (
        "result-image-bad",
        r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"i","content":[{"type":"image","source":{"type":"url"}}]}]}]}"#,
    ),
    (
        "result-is-error-bad",
        r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"i","is_error":"yes"}]}]}"#,
    ),
    ("system-bad", r#"{"model":"m","max_tokens":1,"system":3,"messages":[{"role":"user","content":"x"}]}"#),
    (
        "system-block-type",
        r#"{"model":"m","max_tokens":1,"system":[{"type":"image"}],"messages":[{"role":"user","content":"x"}]}"#,
    ),
    ("system-block-bad", r#"{"model":"m","max_tokens":1,"system":[1],"messages":[{"role":"user","content":"x"}]}"#),
    (
        "system-block-no-text",
        r#"{"model":"m","max_tokens":1,"system":[{"type":"text"}],"messages":[{"role":"user","content":"x"}]}"#,
    ),
    ("tools-bad", r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],"tools":[1]}"#),
    (
        "tools-type",
        r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],"tools":[{"type":"web_search_20250305","name":"w"}]}"#,
    ),
    (
        "tools-type-number",
        r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],"tools":[{"type":1}]}"#,
    ),
    (
        "tools-no-name",
        r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],"tools":[{"input_schema":{}}]}"#,
    ),
    (
        "tools-no-schema",
        r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],"tools":[{"name":"f"}]}"#,
    ),
    (
        "tools-desc-bad",
        r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],"tools":[{"name":"f","input_schema":{},"description":1}]}"#,
    ),
    (
        "format-bad",
        r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],"output_config":{"format":{"type":"xml"}}}"#,
    ),
];

fn render_fronts() -> String {
    let mut out = String::new();
    for (name, body) in RESPONSES_FRONT {
        let m: Map<String, Value> = serde_json::from_str(body).unwrap();
        let got = match responses::request_to_pivot(&m) {
            Ok(p) => format!("{} {} {} {:?}", serde_json::to_string(&p.body).unwrap(), p.model, p.stream, p.max_tokens),
            Err(e) => format!("ERR {} {:?} {}", e.code.as_str(), e.param, e.message),
        };
        out.push_str(&format!("{name} responses-front {got}\n"));
    }
    for (name, body) in ANTHROPIC_FRONT {
        let m: Map<String, Value> = serde_json::from_str(body).unwrap();
        out.push_str(&format!("{name} anthropic-front {}\n", pivot_of(anthropic::request_to_pivot(&m))));
    }
    for (name, body) in GEMINI_FRONT {
        let m: Map<String, Value> = serde_json::from_str(body).unwrap();
        for stream in [false, true] {
            out.push_str(&format!(
                "{name} gemini-front {stream} {}\n",
                pivot_of(gemini::request_to_pivot(&m, "m", stream))
            ));
        }
    }
    out
}

fn pivot_of(r: Result<crate::dialect::pivot::PivotRequest, crate::errors::GatewayError>) -> String {
    match r {
        Ok(p) => format!("{} {} {} {:?}", serde_json::to_string(&p.body).unwrap(), p.model, p.stream, p.max_tokens),
        Err(e) => format!("ERR {} {:?} {}", e.code.as_str(), e.param, e.message),
    }
}

#[test]
fn front_requests_match_the_golden_file() {
    let got = render_fronts();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/dialect/tests/front_golden.txt");
    if std::env::var_os("TOLLGATE_BLESS").is_some() {
        std::fs::write(path, &got).unwrap();
    }
    let want = std::fs::read_to_string(path).unwrap();
    for (g, w) in got.lines().zip(want.lines()) {
        assert_eq!(g, w);
    }
    assert_eq!(got.lines().count(), want.lines().count());
    assert_eq!(got.lines().count(), RESPONSES_FRONT.len() + ANTHROPIC_FRONT.len() + 2 * GEMINI_FRONT.len());
}
