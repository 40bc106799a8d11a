//! Tests of the exchange, by stage; this file holds the fixtures they share.

use serde_json::{json, Map, Value};

use super::*;
use crate::config::Config;
use crate::keys;
use crate::limits::{self, MemoryStore};

mod admit_tests;
mod auto_tests;
mod count_tests;
mod embeddings_tests;
mod failover_tests;
mod limit_policy_tests;
mod models_tests;
mod policy_tests;
mod record_tests;
mod remote_tests;
mod request_tests;
mod response_tests;

fn cfg() -> Config {
    let h = |k: &str| keys::to_hex(&keys::sha256(k.as_bytes()));
    let j = format!(
        r#"{{"clusters":[{{"name":"c"}}],
        "models":[{{"id":"m","type":"text","cluster":"c","default_max_tokens":16,"price":{{"prompt_per_1k":1,"completion_per_1k":1}}}},
                  {{"id":"free","type":"text","cluster":"c","sandbox":true}},
                  {{"id":"m2","type":"text","cluster":"c","upstream_model":"up-m2","default_max_tokens":10,
                    "price":{{"prompt_per_1k":1,"completion_per_1k":1}}}}],
        "accounts":[{{"id":"a","rpm":3}},{{"id":"b","rpm":100}},{{"id":"q","rpm":3}}],
        "keys":[{{"id":"k","sha256":"{}","account":"a","sandbox_daily_quota":2}},
                {{"id":"capped","sha256":"{}","account":"b","spend_cap":0.05}},
                {{"id":"capq","sha256":"{}","account":"q","spend_cap":0.05,"sandbox_daily_quota":2}}]}}"#,
        h("sk-a"),
        h("sk-capped"),
        h("sk-capq")
    );
    Config::parse(j.as_bytes()).unwrap()
}

fn run(cfg: &Config, store: &MemoryStore, now_ms: u64, key: &str, body: &str) -> (Exchange, Option<LocalReply>) {
    match send(cfg, store, now_ms, key, "/v1/chat/completions", body) {
        (ex, BodyAction::Reply(r)) => (ex, Some(r)),
        (ex, BodyAction::Forward { .. }) => (ex, None),
        (_, BodyAction::AskLimits) => panic!("the local store never asks the limits service"),
    }
}

fn send(cfg: &Config, store: &MemoryStore, now_ms: u64, key: &str, path: &str, body: &str) -> (Exchange, BodyAction) {
    let env = Env { now_ms, store };
    let mut ex = Exchange::new();
    let auth = format!("Bearer {key}");
    let head = RequestHead { method: "POST", path, authorization: Some(&auth), ..Default::default() };
    match ex.on_request_headers(cfg, &head, &env) {
        HeadAction::Reply(r) => return (ex, BodyAction::Reply(r)),
        HeadAction::ReadBody(_) => {}
    }
    let a = ex.on_request_body(cfg, body.as_bytes(), &env);
    (ex, a)
}

/// The body that goes upstream (the client's own bytes when the action replaces none).
fn forwarded(a: &BodyAction, raw: &str) -> Value {
    match a {
        BodyAction::Forward { body: Some(b), .. } => serde_json::from_slice(b).unwrap(),
        BodyAction::Forward { body: None, .. } => serde_json::from_str(raw).unwrap(),
        BodyAction::Reply(r) => panic!("refused: {}", String::from_utf8_lossy(&r.body)),
        BodyAction::AskLimits => panic!("the local store never asks the limits service"),
    }
}

/// The admission estimate as the README states it, in micro-credits, for the test models
/// (1 credit per 1000 prompt or completion tokens): ceil(bytes / 4) + max_tokens x choices.
fn reservation(body: &str, max_tokens: u64, choices: u64) -> u64 {
    (body.len() as u64).div_ceil(4) * 1000 + max_tokens * choices * 1000
}

fn header<'a>(r: &'a LocalReply, name: &str) -> Option<&'a str> {
    r.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

const CHAT: &str = r#"{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#;

const FREE: &str = r#"{"model":"free","messages":[{"role":"user","content":"hi"}]}"#;

fn head_of<'a>(method: &'a str, path: &'a str, auth: &'a str) -> RequestHead<'a> {
    RequestHead { method, path, authorization: Some(auth), ..Default::default() }
}
