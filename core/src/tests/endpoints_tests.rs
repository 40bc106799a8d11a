//! Tests of `endpoints.rs` (in their own file, so test code is found by its path).
use super::*;

#[test]
fn key_param_is_removed_from_paths() {
    assert_eq!(without_query_param("/v1beta/models?key=sk-1", "key").as_deref(), Some("/v1beta/models"));
    assert_eq!(
        without_query_param("/v1beta/m:streamGenerateContent?alt=sse&key=k", "key").as_deref(),
        Some("/v1beta/m:streamGenerateContent?alt=sse")
    );
    assert_eq!(without_query_param("/x?key", "key").as_deref(), Some("/x"));
    assert_eq!(without_query_param("/x?keys=1", "key"), None);
    assert_eq!(without_query_param("/x", "key"), None);
    assert_eq!(without_query_param("/x?KEY=a&Key=b&%6Bey=c&k%65Y=d&alt=sse", "key").as_deref(), Some("/x?alt=sse"));
    assert_eq!(without_query_param("/x?monkey=1&key2=2", "key"), None);
}

#[test]
fn classifies_openai_paths_under_both_prefixes() {
    assert_eq!(classify("GET", "/v1/models"), Endpoint::ListModels);
    assert_eq!(classify("GET", "/api/v1/models"), Endpoint::ListModels);
    assert_eq!(classify("GET", "/v1/models/"), Endpoint::ListModels);
    assert_eq!(classify("POST", "/v1/chat/completions"), Endpoint::ChatCompletions);
    assert_eq!(classify("POST", "/v1/chat/completions?x=1"), Endpoint::ChatCompletions);
    assert_eq!(classify("POST", "/api/v1/images/generations"), Endpoint::Images);
    assert_eq!(classify("POST", "/v1/videos/generations"), Endpoint::Videos);
    assert_eq!(classify("GET", "/v1/models/qai-flash"), Endpoint::GetModel("qai-flash".into()));
}

#[test]
fn wrong_method_and_unknown_paths() {
    assert_eq!(classify("GET", "/v1/chat/completions"), Endpoint::MethodNotAllowed);
    assert_eq!(classify("POST", "/v1/models"), Endpoint::MethodNotAllowed);
    assert_eq!(classify("GET", "/v2/models"), Endpoint::Unknown);
    assert_eq!(classify("GET", "/"), Endpoint::Unknown);
    assert_eq!(classify("POST", "/v1/models/qai-flash:frobnicate"), Endpoint::Unknown);
}

#[test]
fn anthropic_and_gemini_paths() {
    assert_eq!(classify("POST", "/v1/messages"), Endpoint::Messages);
    assert_eq!(classify("POST", "/api/v1/messages"), Endpoint::Messages);
    let g = |m: &str, s| Endpoint::Gemini { model: m.to_string(), stream: s };
    assert_eq!(classify("POST", "/v1beta/models/qai-flash:generateContent"), g("qai-flash", false));
    assert_eq!(classify("POST", "/v1/models/qai-flash:generateContent"), g("qai-flash", false));
    assert_eq!(classify("POST", "/api/v1beta/models/qai-pro:streamGenerateContent?alt=sse"), g("qai-pro", true));
    assert_eq!(classify("GET", "/v1beta/models/qai-pro:generateContent"), Endpoint::MethodNotAllowed);
    assert_eq!(classify("GET", "/v1/models"), Endpoint::ListModels);
    assert_eq!(classify("GET", "/v1beta/models"), Endpoint::GeminiListModels);
    assert_eq!(classify("GET", "/v1beta/models/m"), Endpoint::GeminiGetModel("m".into()));
    assert_eq!(query_param("/x?alt=sse&key=abc", "key"), Some("abc"));
    assert_eq!(query_param("/x?alt=sse", "key"), None);
    assert_eq!(percent_decode("a%2Fb%zz"), "a/b%zz");
}

#[test]
fn gemini_namespace_covers_unknown_gemini_paths_only() {
    for p in ["/v1beta/nothing-here", "/api/v1beta/models/m:countTokens?key=k", "/v1/models/m:embedContent", "/v1beta"]
    {
        assert!(in_gemini_namespace(p), "{p}");
    }
    for p in ["/v1/chat/completions", "/v1/messages", "/v1/models", "/v1/models/m", "/v1betax/y", "/nowhere"] {
        assert!(!in_gemini_namespace(p), "{p}");
    }
}

#[test]
fn responses_endpoint() {
    assert_eq!(classify("POST", "/v1/responses"), Endpoint::Responses);
    assert_eq!(classify("POST", "/api/v1/responses"), Endpoint::Responses);
    assert_eq!(classify("GET", "/v1/responses"), Endpoint::MethodNotAllowed);
    assert_eq!(Endpoint::Responses.dialect(), Dialect::OpenAiResponses);
    assert!(Endpoint::Responses.is_chat() && Endpoint::Responses.needs_body());
    assert_eq!(Endpoint::Responses.model_type(), Some(ModelType::Text));
}

#[test]
fn embeddings_and_token_counting_endpoints() {
    for p in ["/v1/embeddings", "/api/v1/embeddings", "/v1/embeddings/"] {
        assert_eq!(classify("POST", p), Endpoint::Embeddings, "{p}");
    }
    assert_eq!(classify("GET", "/v1/embeddings"), Endpoint::MethodNotAllowed);
    assert_eq!(classify("POST", "/v1/messages/count_tokens"), Endpoint::CountTokens);
    assert_eq!(Endpoint::CountTokens.dialect(), Dialect::Anthropic);
    for p in
        ["/v1beta/models/m%2D1:countTokens?key=k", "/v1/models/m-1:countTokens", "/api/v1beta/models/m-1:countTokens"]
    {
        assert_eq!(classify("POST", p), Endpoint::GeminiCountTokens { model: "m-1".into() }, "{p}");
    }
    assert_eq!(Endpoint::GeminiCountTokens { model: "m".into() }.dialect(), Dialect::Gemini);
    assert_eq!(classify("GET", "/v1beta/models/m:countTokens"), Endpoint::MethodNotAllowed);
    assert_eq!(classify("POST", "/v1beta/models/:countTokens"), Endpoint::Unknown);
}

#[test]
fn split_query_splits_at_the_first_question_mark() {
    assert_eq!(split_query("/v1/chat/completions?x=1"), ("/v1/chat/completions", Some("x=1")));
    assert_eq!(split_query("/v1/models?a?b"), ("/v1/models", Some("a?b")));
    assert_eq!(split_query("/v1/models?"), ("/v1/models", Some("")));
    assert_eq!(split_query("?"), ("", Some("")));
    assert_eq!(split_query("/v1/models"), ("/v1/models", None));
    assert_eq!(split_query("/v1/é?ü=1"), ("/v1/é", Some("ü=1")));
    assert_eq!(split_query(""), ("", None));
}
