//! The plugin configuration: any bytes parse to a config or a clear error, never a panic; a
//! parsed config is internally consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_core::config::Config;

fuzz_target!(|data: &[u8]| {
    match Config::parse(data) {
        Ok(cfg) => {
            for m in &cfg.models {
                assert!(cfg.cluster_of(m).is_some(), "model {} has no cluster", m.id);
                assert!(cfg.model(&m.id).is_some());
            }
            for k in &cfg.keys {
                assert!(cfg.account(k.account).is_some(), "key {} has no account", k.id);
            }
            assert_eq!(cfg.key_table.len(), cfg.keys.len());
        }
        Err(e) => assert!(!e.is_empty()),
    }
});
