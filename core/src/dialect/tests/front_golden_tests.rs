//! The fronts' request reads (the Responses API, Anthropic and Gemini fronts'
//! `request_to_pivot`) against a golden file: every pivot and every refusal (code, param,
//! message) of a corpus of client requests that covers each branch. `TOLLGATE_BLESS=1` rewrites
//! the file.
use serde_json::{Map, Value};

use super::upstream_golden_tests::assert_golden;
use super::{anthropic, gemini, responses};

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
    assert_golden(concat!(env!("CARGO_MANIFEST_DIR"), "/src/dialect/tests/front_golden.txt"), &got);
    assert_eq!(got.lines().count(), RESPONSES_FRONT.len() + ANTHROPIC_FRONT.len() + 2 * GEMINI_FRONT.len());
}
