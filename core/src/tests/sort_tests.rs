//! Tests of `sort.rs`: each sort against the standard library's on the same input.
use proptest::prelude::*;

use super::*;

fn hash_of(i: u64) -> [u8; 32] {
    crate::keys::sha256(&i.to_le_bytes())
}

#[test]
fn radix_sorts_a_key_table_like_the_standard_sort() {
    // Many buckets deep enough to be split twice, and a hash repeated three times: the copies
    // end up next to each other, by key index.
    let mut v: Vec<([u8; 32], u32)> = (0..20_000u32).map(|i| (hash_of(u64::from(i)), i)).collect();
    v.push((hash_of(7), 20_000));
    v.push((hash_of(7), 20_001));
    v.swap(3, 20_001);
    let mut want = v.clone();
    want.sort();
    radix_sort(&mut v);
    assert_eq!(v, want);
    let at = v.iter().position(|e| e.0 == hash_of(7)).unwrap();
    assert_eq!(v[at..at + 3].iter().map(|e| e.1).collect::<Vec<_>>(), vec![7, 20_000, 20_001]);
}

#[test]
fn radix_sorts_hashes_sharing_long_prefixes() {
    // 3000 hashes equal in their first 30 bytes: the sort goes down byte by byte, and a run of
    // equal hashes is ordered by index.
    let mut v: Vec<([u8; 32], u32)> = (0..3000u32)
        .map(|i| {
            let mut h = [0xab; 32];
            h[30] = (i % 5) as u8;
            h[31] = (i % 3) as u8;
            (h, 2999 - i)
        })
        .collect();
    let mut want = v.clone();
    want.sort();
    radix_sort(&mut v);
    assert_eq!(v, want);
}

#[test]
fn radix_sorts_u64s_numerically() {
    let mut v: Vec<u64> = (0..50_000u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i << 7)).collect();
    v.extend([0, u64::MAX, 0, 1 << 63, u64::MAX]);
    let mut want = v.clone();
    want.sort_unstable();
    radix_sort(&mut v);
    assert_eq!(v, want);
}

#[test]
fn sorts_of_nothing_and_of_one() {
    let mut e: Vec<u64> = vec![];
    radix_sort(&mut e);
    heap_sort_by(&mut e, |a, b| a < b);
    assert_eq!(e, Vec::<u64>::new());
    let mut one = vec![5u64];
    radix_sort(&mut one);
    heap_sort_by(&mut one, |a, b| a < b);
    assert_eq!(one, vec![5]);
}

proptest! {
    #[test]
    fn radix_sort_matches_sort(mut v in prop::collection::vec(any::<u64>().prop_map(|x| x % 1000 * 0x0101_0101_0101), 0..600)) {
        let mut want = v.clone();
        want.sort_unstable();
        radix_sort(&mut v);
        prop_assert_eq!(v, want);
    }

    #[test]
    fn radix_sort_of_entries_matches_sort(v in prop::collection::vec((any::<[u8; 2]>(), 0u32..50), 0..400)) {
        let mut v: Vec<([u8; 32], u32)> = v.into_iter().map(|(p, i)| {
            let mut h = [0u8; 32];
            h[0] = p[0] & 3;
            h[17] = p[1] & 7;
            (h, i)
        }).collect();
        let mut want = v.clone();
        want.sort();
        radix_sort(&mut v);
        prop_assert_eq!(v, want);
    }

    #[test]
    fn heap_sort_matches_sort(mut v in prop::collection::vec(prop::collection::vec(0u8..4, 0..4), 0..300)) {
        let mut want = v.clone();
        want.sort();
        heap_sort_by(&mut v, |a, b| a < b);
        prop_assert_eq!(v, want);
    }
}
