//! The tests run against the serde_json the `.wasm` ships with. `cargo test --workspace` unifies
//! features among the members it builds; a member that turned on serde_json's `preserve_order`
//! (the demo backend once did) would make every filter test run with insertion-ordered objects
//! while the shipped filter sorts them. This fails if that ever comes back.
#![allow(clippy::unwrap_used)]

#[test]
fn serde_json_objects_are_sorted_as_in_the_shipped_wasm() {
    let m: serde_json::Map<String, serde_json::Value> = serde_json::from_str(r#"{"b":1,"a":2}"#).unwrap();
    assert_eq!(m.keys().map(String::as_str).collect::<Vec<_>>(), ["a", "b"], "serde_json/preserve_order is on");
}
