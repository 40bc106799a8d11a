//! The plugin configuration: any bytes parse to a config or a clear error, never a panic; a
//! parsed config is internally consistent; read in pieces (as the filter reads it from Envoy),
//! it parses to the same config or the same error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_core::config::Config;

fuzz_target!(|data: &[u8]| {
    let whole = Config::parse(data);
    let piece = usize::from(data.first().copied().unwrap_or(0) % 17) + 1;
    let pieces = Config::parse_pieces(
        &mut |offset, max| {
            let end = offset.saturating_add(max.min(piece)).min(data.len());
            Ok(data.get(offset.min(end)..end).unwrap_or_default().to_vec())
        },
        data.len(),
    );
    match (&whole, &pieces) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.keys, b.keys);
            assert_eq!(a.accounts, b.accounts);
            assert_eq!(a.clusters, b.clusters);
            assert_eq!(a.models.len(), b.models.len());
            assert_eq!((a.max_body_bytes, a.cluster_header.as_str()), (b.max_body_bytes, b.cluster_header.as_str()));
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("parse and parse_pieces disagree: {:?} / {:?}", whole.as_ref().err(), pieces.as_ref().err()),
    }
    match whole {
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
