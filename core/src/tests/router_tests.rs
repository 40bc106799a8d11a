//! Tests of `router.rs` (the `auto` model's rules) and of router entries in the configuration.
use serde_json::{json, Value};

use super::*;
use crate::config::Config;

/// Three candidates, cheapest first: small (no tools, no images), mid (tools), big (tools, images).
fn config(router: Value) -> Result<Config, String> {
    let mut models = vec![
        json!({"id": "small", "type": "text", "cluster": "c", "context_window": 100,
               "price": {"prompt_per_1k": 1, "completion_per_1k": 1}}),
        json!({"id": "mid", "type": "text", "cluster": "c", "context_window": 1000, "supports": ["tools"],
               "price": {"prompt_per_1k": 2, "completion_per_1k": 2}}),
        json!({"id": "big", "type": "text", "cluster": "d", "context_window": 10000, "supports": ["tools", "images"],
               "price": {"prompt_per_1k": 10, "completion_per_1k": 10}}),
        json!({"id": "pic", "type": "image", "cluster": "c"}),
    ];
    models.push(router);
    let cfg = json!({"clusters": [{"name": "c"}, {"name": "d"}], "models": models});
    Config::parse(cfg.to_string().as_bytes())
}

fn auto(candidates: &[&str], max: Option<f64>) -> Value {
    let mut r = json!({"candidates": candidates});
    if let Some(m) = max {
        r["max_request_credits"] = json!(m);
    }
    json!({"id": "auto", "type": "text", "router": r})
}

fn cfg3() -> Config {
    config(auto(&["small", "mid", "big"], None)).unwrap()
}

fn router_of(cfg: &Config) -> &Router {
    cfg.model("auto").and_then(|m| m.router.as_deref()).unwrap()
}

fn signals(prompt: u64, max_tokens: Option<u64>, tools: bool, images: bool) -> Signals {
    Signals { prompt_tokens: prompt, max_tokens, tools, images }
}

/// The id chosen, or the refusal's (code, param).
fn pick(cfg: &Config, s: Signals, allowed: &[&str], micros: u64) -> Result<String, (Code, Option<String>, String)> {
    choose(
        "auto",
        router_of(cfg),
        &cfg.models,
        &s,
        |m| allowed.contains(&m.id.as_str()),
        |m| {
            // The test's reservation: `micros` per credit of the model's prompt price.
            (m.price.prompt_per_1k as u64) * micros
        },
    )
    .map(|m| m.id.clone())
    .map_err(|e| (e.code, e.param, e.message))
}

const ALL: &[&str] = &["small", "mid", "big"];

#[test]
fn config_compiles_a_router() {
    let c = config(auto(&["small", "mid", "big"], Some(2.5))).unwrap();
    let r = router_of(&c);
    let ids: Vec<&str> = r.candidates.iter().map(|&i| c.models[i].id.as_str()).collect();
    assert_eq!(ids, ["small", "mid", "big"]);
    assert_eq!(r.max_request_micros, Some(2_500_000));
    // It carries its first candidate's cluster (never routed itself).
    assert_eq!(c.model("auto").unwrap().cluster, c.model("small").unwrap().cluster);
    let c = config(auto(&["big", "small"], None)).unwrap();
    assert_eq!(c.model("auto").unwrap().cluster, c.model("big").unwrap().cluster);
    assert_eq!(router_of(&c).max_request_micros, None);
    // Capabilities as configured; a model without `supports` has none.
    let m = |id: &str| c.model(id).unwrap().supports;
    assert_eq!(
        (m("small"), m("mid"), m("big")),
        (
            Supports { tools: false, images: false },
            Supports { tools: true, images: false },
            Supports { tools: true, images: true }
        )
    );
    assert_eq!(c.model("mid").unwrap().context_window, Some(1000));
}

#[test]
fn config_refuses_bad_routers() {
    let err = |v: Value| config(v).unwrap_err();
    assert_eq!(err(auto(&["small", "nope"], None)), "models[4].router.candidates[1]: no model 'nope' in 'models'");
    assert_eq!(err(auto(&["small", "pic"], None)), "models[4].router.candidates[1]: 'pic' is not a text model");
    assert_eq!(err(auto(&["small", "auto"], None)), "models[4].router.candidates[1]: 'auto' is a router model itself");
    assert_eq!(err(auto(&["small", "small"], None)), "models[4].router.candidates[1]: 'small' is listed twice");
    assert_eq!(err(auto(&[], None)), "models[4].router.candidates: must name at least one model");
    assert_eq!(err(auto(&["small"], Some(0.0))), "models[4].router.max_request_credits: must be a positive number");
    assert_eq!(err(auto(&["small"], Some(-1.0))), "models[4].router.max_request_credits: must be a positive number");
    let mut v = auto(&["small"], None);
    v["cluster"] = json!("c");
    assert_eq!(err(v), "models[4]: a router model has no 'cluster'");
    let mut v = auto(&["small"], None);
    v["price"] = json!({"prompt_per_1k": 1});
    assert_eq!(err(v), "models[4]: a router model has no price or sandbox of its own (its candidates do)");
    let mut v = auto(&["small"], None);
    v["type"] = json!("image");
    assert_eq!(err(v), "models[4].type: a router model must be a text model");
    let mut v = auto(&["small"], None);
    v["router"]["prefer"] = json!("cheapest");
    let e = err(v);
    assert_eq!(e, "configuration: models[4]: unknown field `prefer`, expected `candidates` or `max_request_credits`");
    // Not a router, and no cluster.
    assert_eq!(err(json!({"id": "x", "type": "text"})), "models[4]: missing field 'cluster'");
    assert_eq!(
        err(json!({"id": "x", "type": "text", "cluster": "c", "supports": ["video"]})),
        "configuration: models[4]: unknown variant `video`, expected `tools` or `images`"
    );
    assert_eq!(
        err(json!({"id": "x", "type": "text", "cluster": "c", "context_window": 0})),
        "models[4].context_window: must be a positive number of tokens"
    );
    // A candidate needs a context window.
    let c = json!({"clusters": [{"name": "c"}], "models": [
        {"id": "w", "type": "text", "cluster": "c"},
        {"id": "auto", "type": "text", "router": {"candidates": ["w"]}}]});
    assert_eq!(
        Config::parse(c.to_string().as_bytes()).unwrap_err(),
        "models[1].router.candidates[0]: 'w' has no 'context_window' (a router candidate needs one)"
    );
}

#[test]
fn the_first_candidate_that_fits_serves() {
    let c = cfg3();
    assert_eq!(pick(&c, signals(10, None, false, false), ALL, 1), Ok("small".into()));
    // The router's order is the preference, whatever the prices.
    let c2 = config(auto(&["big", "small"], None)).unwrap();
    assert_eq!(pick(&c2, signals(10, None, false, false), ALL, 1), Ok("big".into()));
}

#[test]
fn rule_context_window_counts_prompt_and_max_tokens() {
    let c = cfg3();
    // Exactly the window fits; one token more does not.
    assert_eq!(pick(&c, signals(100, None, false, false), ALL, 1), Ok("small".into()));
    assert_eq!(pick(&c, signals(101, None, false, false), ALL, 1), Ok("mid".into()));
    assert_eq!(pick(&c, signals(60, Some(40), false, false), ALL, 1), Ok("small".into()));
    assert_eq!(pick(&c, signals(60, Some(41), false, false), ALL, 1), Ok("mid".into()));
    assert_eq!(pick(&c, signals(5000, Some(5000), false, false), ALL, 1), Ok("big".into()));
    let e = pick(&c, signals(5000, Some(5001), false, false), ALL, 1).unwrap_err();
    assert_eq!((e.0, e.1.as_deref()), (Code::ContextLengthExceeded, Some("messages")));
    assert_eq!(
        e.2,
        "This request needs about 5000 tokens of prompt and 5001 of max_tokens, more than the largest context \
         window (10000 tokens) among the models 'auto' chooses from"
    );
    let e = pick(&c, signals(10001, None, false, false), ALL, 1).unwrap_err();
    assert_eq!(
        e.2,
        "This request needs about 10001 tokens of prompt, more than the largest context window (10000 tokens) \
         among the models 'auto' chooses from"
    );
    // The widest window named is among the models the key may use.
    let e = pick(&c, signals(1001, None, false, false), &["small", "mid"], 1).unwrap_err();
    assert_eq!(e.0, Code::ContextLengthExceeded);
    assert!(e.2.contains("(1000 tokens)"), "{}", e.2);
}

#[test]
fn rule_tools_and_images() {
    let c = cfg3();
    assert_eq!(pick(&c, signals(10, None, true, false), ALL, 1), Ok("mid".into()));
    assert_eq!(pick(&c, signals(10, None, false, true), ALL, 1), Ok("big".into()));
    assert_eq!(pick(&c, signals(10, None, true, true), ALL, 1), Ok("big".into()));
    let e = pick(&c, signals(10, None, true, false), &["small"], 1).unwrap_err();
    assert_eq!((e.0, e.1.as_deref()), (Code::BadRequest, Some("tools")));
    assert_eq!(e.2, "None of the models 'auto' could choose for this request supports tools");
    let e = pick(&c, signals(10, None, false, true), &["small", "mid"], 1).unwrap_err();
    assert_eq!((e.0, e.1.as_deref()), (Code::BadRequest, Some("messages")));
    assert_eq!(e.2, "None of the models 'auto' could choose for this request accepts image input");
}

#[test]
fn rule_cost_ceiling() {
    // Reservations at 1 credit per prompt-price unit: small 1, mid 2, big 10 credits.
    let c = config(auto(&["small", "mid", "big"], Some(2.0))).unwrap();
    assert_eq!(pick(&c, signals(10, None, false, false), ALL, 1_000_000), Ok("small".into()));
    // Exactly the ceiling is allowed.
    assert_eq!(pick(&c, signals(10, None, true, false), ALL, 1_000_000), Ok("mid".into()));
    let e = pick(&c, signals(10, None, false, true), ALL, 1_000_000).unwrap_err();
    assert_eq!((e.0, e.1.as_deref()), (Code::BadRequest, Some("model")));
    assert_eq!(
        e.2,
        "Every model 'auto' could choose for this request would reserve more than its cost ceiling of 2 credits"
    );
    // Over the ceiling, the cheaper candidate that fits is still taken.
    assert_eq!(pick(&c, signals(10, None, false, false), &["small", "big"], 1_000_000), Ok("small".into()));
}

#[test]
fn rule_allowed_models_skips_and_refuses() {
    let c = cfg3();
    assert_eq!(pick(&c, signals(10, None, false, false), &["mid", "big"], 1), Ok("mid".into()));
    assert_eq!(pick(&c, signals(10, None, false, false), &["big"], 1), Ok("big".into()));
    let e = pick(&c, signals(10, None, false, false), &[], 1).unwrap_err();
    assert_eq!((e.0, e.1.as_deref()), (Code::Forbidden, Some("model")));
    assert_eq!(e.2, "This API key may use none of the models 'auto' chooses from (small, mid, big)");
}

#[test]
fn the_refusal_names_the_latest_rule_that_skipped_a_candidate_first() {
    let c = config(auto(&["small", "mid", "big"], Some(1.0))).unwrap();
    // small: tools; mid: images; big: cost -> the cost ceiling is named.
    let e = pick(&c, signals(10, None, true, true), ALL, 1_000_000).unwrap_err();
    assert_eq!(e.1.as_deref(), Some("model"));
    // small: window; mid, big: not allowed -> the window is named (it came later in the order).
    let e = pick(&c, signals(500, None, false, false), &["small"], 1).unwrap_err();
    assert_eq!(e.0, Code::ContextLengthExceeded);
    // small: window; mid: images; big not allowed -> images.
    let e = pick(&c, signals(500, None, false, true), &["small", "mid"], 1).unwrap_err();
    assert_eq!(e.1.as_deref(), Some("messages"));
    assert_eq!(e.0, Code::BadRequest);
    // The order itself, candidate by candidate: the window before tools before images before cost.
    let r = router_of(&c);
    let small = c.model("small").unwrap();
    let fail = |s: Signals, allowed: bool| first_failed(r, small, &s, |_| allowed, |_| u64::MAX);
    assert_eq!(fail(signals(500, None, true, true), false), Some(Rule::Allowed));
    assert_eq!(fail(signals(500, None, true, true), true), Some(Rule::ContextWindow));
    assert_eq!(fail(signals(5, None, true, true), true), Some(Rule::Tools));
    assert_eq!(fail(signals(5, None, false, true), true), Some(Rule::Images));
    assert_eq!(fail(signals(5, None, false, false), true), Some(Rule::CostCeiling));
}

#[test]
fn signals_read_the_pivot_body() {
    let s = |v: Value| {
        let sig = Signals::of(v.as_object().unwrap(), 7, Some(3));
        (sig.tools, sig.images, sig.window_tokens())
    };
    let text = json!({"messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(s(text), (false, false, 10));
    let tools = json!({"messages": [], "tools": [{"type": "function", "function": {"name": "f"}}]});
    assert_eq!(s(tools), (true, false, 10));
    assert_eq!(s(json!({"messages": [], "tools": []})), (false, false, 10));
    assert_eq!(s(json!({"messages": [], "functions": [{"name": "f"}]})), (true, false, 10));
    let image = json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]});
    assert_eq!(s(image), (false, true, 10));
    let text_parts = json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "image_url"}]}]});
    assert_eq!(s(text_parts), (false, false, 10));
}
