//! Tests of `pricing.rs`: the amounts, and the reserve-grow-settle policy on a counter store.
use super::*;
use crate::config::Config;
use crate::limits::{spend_state, MemoryStore, StoreError};

fn cfg() -> Config {
    let j = r#"{"clusters":[{"name":"c"}],
        "models":[{"id":"m","type":"text","cluster":"c","default_max_tokens":16,"price":{"prompt_per_1k":1,"completion_per_1k":2}},
                  {"id":"img","type":"image","cluster":"c","price":{"per_image":0.5}}],
        "accounts":[{"id":"a","spend_cap":1}],
        "keys":[{"id":"k","sha256":"0000000000000000000000000000000000000000000000000000000000000000","account":"a","spend_cap":0.01}]}"#;
    Config::parse(j.as_bytes()).unwrap()
}

#[test]
fn admission_is_the_text_estimate_or_the_media_price() {
    let c = cfg();
    let m = c.model("m").unwrap();
    // 400 bytes: 100 prompt tokens at 1/1k; 16 default completion tokens x 2 choices at 2/1k.
    assert_eq!(admission_micros(m, &Endpoint::ChatCompletions, 400, 2.0, None), 100_000 + 64_000);
    assert_eq!(admission_micros(m, &Endpoint::ChatCompletions, 400, 1.0, Some(10)), 100_000 + 20_000);
    let img = c.model("img").unwrap();
    assert_eq!(admission_micros(img, &Endpoint::Images, 400, 3.0, None), 1_500_000);
    assert_eq!(completion_budget(m, None), 16);
    assert_eq!(cut_completion_tokens(4000, 16), 16);
    assert_eq!(cut_completion_tokens(40, 16), 10);
}

#[test]
fn cost_is_the_usage_at_token_prices_or_the_units_at_media_prices() {
    let c = cfg();
    let u = Usage { prompt_tokens: 1000, completion_tokens: 500, ..Usage::default() };
    assert_eq!(cost_micros(c.model("m").unwrap(), &Endpoint::ChatCompletions, &u, 9.0), 2_000_000);
    assert_eq!(cost_micros(c.model("img").unwrap(), &Endpoint::Images, &u, 2.0), 1_000_000);
}

#[test]
fn a_hold_reserves_on_every_cap_grows_and_settles_at_the_cost() {
    let c = cfg();
    let key = c.key(0).unwrap();
    let scopes = spend_scopes(key, c.account(key.account), 0);
    assert_eq!(
        scopes.iter().map(|s| (s.key.as_str(), s.cap_micros)).collect::<Vec<_>>(),
        [("spend:key:k", 10_000), ("spend:acct:a", 1_000_000)]
    );
    let store = MemoryStore::new();
    let Ok(Reservation::Held(mut hold)) = reserve(&store, scopes.clone(), 4_000) else { panic!("not held") };
    assert_eq!(hold.grow_to(&store, 3_000), Ok(true), "already covered: nothing more reserved");
    assert_eq!(hold.grow_to(&store, 6_000), Ok(true));
    assert_eq!(hold.reserved_micros(), 6_000);
    assert_eq!(hold.grow_to(&store, 20_000), Ok(false), "past the key's cap");
    assert_eq!(spend_state(&store, "spend:key:k"), Ok((0, 6_000)));
    assert_eq!(hold.settle(&store, 2_500), Ok(()));
    assert_eq!(spend_state(&store, "spend:key:k"), Ok((2_500, 0)));
    assert_eq!(spend_state(&store, "spend:acct:a"), Ok((2_500, 0)));
    assert!(matches!(reserve(&store, scopes, 8_000), Ok(Reservation::Refused)));
    assert!(matches!(reserve(&store, Vec::new(), 8_000), Ok(Reservation::Uncapped)));
}

/// A store whose writes fail once `down` is set.
struct Flaky {
    inner: MemoryStore,
    down: std::cell::Cell<bool>,
}

impl Counters for Flaky {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        self.inner.get(key)
    }
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        if self.down.get() {
            return Err(StoreError::Unavailable);
        }
        self.inner.set(key, value, cas)
    }
    fn remove(&self, key: &str, cas: Option<u32>) -> Result<(), StoreError> {
        self.inner.remove(key, cas)
    }
}

#[test]
fn a_failed_settlement_says_what_stays_held() {
    let c = cfg();
    let key = c.key(0).unwrap();
    let store = Flaky { inner: MemoryStore::new(), down: std::cell::Cell::new(false) };
    let Ok(Reservation::Held(hold)) = reserve(&store, spend_scopes(key, c.account(key.account), 0), 4_000) else {
        panic!("not held")
    };
    store.down.set(true);
    let f = hold.settle(&store, 1_000).unwrap_err();
    assert_eq!(
        f,
        SettleFailure {
            error: LimitError::Unavailable,
            reserved_micros: 4_000,
            actual_micros: 1_000,
            scopes: vec!["spend:key:k".to_string(), "spend:acct:a".to_string()]
        }
    );
    assert_eq!(
        f.to_string(),
        "settling 4000 reserved micro-credits at 1000 on spend:key:k, spend:acct:a failed (limit counter store unavailable); where it failed, the reservation stays held and the cost is not counted as spent"
    );
    assert_eq!(spend_state(&store.inner, "spend:key:k"), Ok((0, 4_000)));
}

#[test]
fn the_admission_estimate_takes_the_dearer_of_each_pair_of_prices() {
    let j = r#"{"clusters":[{"name":"c"}],"models":[
        {"id":"m","type":"text","cluster":"c","price":{"prompt_per_1k":1,"completion_per_1k":2}},
        {"id":"d","type":"text","cluster":"c","price":{"prompt_per_1k":1,"completion_per_1k":2,
          "cached_prompt_per_1k":4,"reasoning_per_1k":8}},
        {"id":"e","type":"text","cluster":"c","price":{"prompt_per_1k":1,"completion_per_1k":2,
          "cached_prompt_per_1k":0.1,"reasoning_per_1k":0.5}},
        {"id":"w","type":"text","cluster":"c","price":{"prompt_per_1k":1,"completion_per_1k":2,
          "cache_write_per_1k":3}}]}"#;
    let c = crate::config::Config::parse(j.as_bytes()).unwrap();
    let est = |id: &str| estimate_micros(c.model(id).unwrap(), 4000, 1.0, Some(1000));
    // 1000 prompt tokens (4000 bytes) + 1000 completion tokens.
    assert_eq!(est("m"), 3_000_000);
    assert_eq!(est("d"), 12_000_000);
    assert_eq!(est("e"), 3_000_000);
    // Prompt tokens priced as cache writes, at 3 per 1000.
    assert_eq!(est("w"), 5_000_000);
}
