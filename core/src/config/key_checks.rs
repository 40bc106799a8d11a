//! The key lists' checks: each list's accounts resolved and its first error found, key ids
//! refused when empty or repeated, and the names a key's errors give (`keys[3].sha256`,
//! `key_table line 3 (sha256)`).

use std::collections::HashMap;

use super::{KeyRecord, RawKeys};
use crate::keys::Hash;

/// Refuses an empty or repeated key id, naming the first place a key-by-key check would stop
/// at. Sorts one `u64` a key (a 32-bit fingerprint of the id above the key's index) rather than
/// filling a hash map of every id or sorting indices by their ids, whose comparisons chase each
/// id through memory (seconds at a million keys); only keys whose fingerprints are equal have
/// their ids compared.
pub(super) fn check_key_ids(keys: &[KeyRecord], name: &dyn Fn(usize) -> String) -> Result<(), String> {
    let id = |i: u32| keys.get(usize::try_from(i).unwrap_or(usize::MAX)).map_or("", |k| k.id.as_str());
    let empty = keys.iter().position(|k| k.id.is_empty());
    u32::try_from(keys.len()).map_err(|_| "keys: too many keys".to_string())?;
    let mut order: Vec<u64> = keys.iter().zip(0u64..).map(|(k, i)| (u64::from(fingerprint(&k.id)) << 32) | i).collect();
    crate::sort::radix_sort(&mut order);
    let index = |e: u64| u32::try_from(e & 0xffff_ffff).unwrap_or(u32::MAX);
    // Within a run of equal fingerprints, sorted by (id, index): the second of equal ids is
    // where the id repeats.
    let mut repeated: Option<(u32, u32)> = None;
    let mut run: Vec<u32> = Vec::new();
    for group in order.chunk_by(|a, b| a >> 32 == b >> 32).filter(|g| g.len() > 1) {
        run.clear();
        run.extend(group.iter().map(|&e| index(e)));
        crate::sort::heap_sort_by(&mut run, |&a, &b| (id(a), a) < (id(b), b));
        let found = run
            .windows(2)
            .filter_map(|w| match w {
                [a, b] if !id(*a).is_empty() && id(*a) == id(*b) => Some((*b, *a)),
                _ => None,
            })
            .min();
        repeated = match (repeated, found) {
            (Some(r), Some(f)) => Some(r.min(f)),
            (r, f) => r.or(f),
        };
    }
    drop(order);
    match (empty, repeated) {
        (Some(e), Some((again, _))) if usize::try_from(again).is_ok_and(|a| a < e) => {}
        (Some(e), _) => return Err(format!("{}: must not be empty", field(&name(e), "id"))),
        _ => {}
    }
    match repeated {
        Some((again, first)) => {
            let (a, f) = (usize::try_from(again).unwrap_or(0), usize::try_from(first).unwrap_or(0));
            Err(format!("{}: duplicate id '{}' (the same as {})", field(&name(a), "id"), id(again), name(f)))
        }
        None => Ok(()),
    }
}

/// FNV-1a of a key id, folded to 32 bits: equal ids have equal fingerprints.
fn fingerprint(id: &str) -> u32 {
    let h = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    u32::try_from((h ^ (h >> 32)) & 0xffff_ffff).unwrap_or(0)
}

/// Where key `i` is configured: `key_table line N` for the first `n_table` keys, `keys[j]` after.
pub(super) fn key_name(n_table: usize, i: usize) -> String {
    match i.checked_sub(n_table) {
        None => format!("key_table line {}", i + 1),
        Some(j) => format!("keys[{j}]"),
    }
}

/// A key's field named after `key_name`: `keys[3].sha256`, `key_table line 3 (sha256)`.
pub(super) fn field(key: &str, name: &str) -> String {
    if key.starts_with("keys[") {
        format!("{key}.{name}")
    } else {
        format!("{key} ({name})")
    }
}

/// A key's error: its index, which check (0 sha256 or line, 1 account, 2 spend cap), the message.
type KeyError = (usize, u8, String);

/// One key list's records and hash entries, their key indices moved up by `offset` and their
/// accounts resolved, with its first error (index, check, message) if any.
pub(super) fn resolve_keys(
    raw: RawKeys,
    offset: usize,
    account_index: &HashMap<String, usize>,
    default_quota: u32,
    name: &dyn Fn(usize) -> String,
) -> (Vec<KeyRecord>, Vec<(Hash, u32)>, Option<KeyError>) {
    let RawKeys { records: mut keys_out, mut table, account_ids, own_quota, invalid, .. } = raw;
    let mut first_err = invalid.map(|(i, check, e)| (i + offset, check, e));
    let mut resolved = vec![0usize; account_ids.len()];
    for (id, (provisional, first_key)) in &account_ids {
        match (account_index.get(id.as_str()), resolved.get_mut(*provisional)) {
            (Some(&a), Some(slot)) => *slot = a,
            _ => {
                let at = first_key + offset;
                if first_err.as_ref().is_none_or(|(i, check, _)| (at, 1) < (*i, *check)) {
                    first_err =
                        Some((at, 1, format!("{}: no account '{id}' in 'accounts'", field(&name(at), "account"))));
                }
            }
        }
    }
    drop(account_ids);
    if first_err.is_some() {
        return (Vec::new(), Vec::new(), first_err);
    }
    let mut own = own_quota.into_iter().peekable();
    for (i, k) in keys_out.iter_mut().enumerate() {
        k.account = resolved.get(k.account).copied().unwrap_or(usize::MAX);
        if own.next_if(|&j| usize::try_from(j).is_ok_and(|j| j == i)).is_none() {
            k.sandbox_daily_quota = default_quota;
        }
    }
    if let Ok(off) = u32::try_from(offset) {
        if off > 0 {
            for e in &mut table {
                e.1 = e.1.saturating_add(off);
            }
        }
    }
    (keys_out, table, None)
}
