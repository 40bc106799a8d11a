//! Small sorts in place, written out once instead of the standard library's: every element type
//! given to `sort_unstable` instantiates its own copy of ipnsort (quicksort, heapsort, small-sort
//! networks), 4 to 20 KB of wasm each, for sorts that run only while a configuration loads or on
//! a request body's rare many-key object.
//!
//! - [`radix_sort`]: an in-place most-significant-byte radix sort (American flag sort) for
//!   elements ordered by a fixed number of bytes: the key table's hashes, the key ids'
//!   fingerprints. Linear in the bytes looked at, no extra memory (a million keys' table is
//!   sorted where it lies), and no comparison chasing memory.
//! - [`heap_sort_by`]: a heapsort for the rest (n log n in the worst case, no extra memory).

use std::cmp::Ordering;

/// An element ordered by its bytes, most significant first: `a < b` exactly when the first of
/// `a.byte(0..LEN)` that differs from `b`'s is smaller (equal bytes: equal elements).
pub trait RadixKey: Copy {
    const LEN: usize;
    fn byte(&self, i: usize) -> u8;
}

/// At or under this many elements, a bucket is finished by insertion sort.
const SMALL: usize = 24;

/// Sorts `v` by [`RadixKey`] order.
pub fn radix_sort<T: RadixKey>(v: &mut [T]) {
    radix_from(v, 0);
}

fn radix_from<T: RadixKey>(v: &mut [T], mut depth: usize) {
    loop {
        if v.len() <= SMALL {
            insertion_sort(v, depth);
            return;
        }
        if depth >= T::LEN {
            // Every element's bytes are equal from here on: equal elements, already in order.
            return;
        }
        let mut ends = [0usize; 256];
        for x in v.iter() {
            if let Some(c) = ends.get_mut(usize::from(x.byte(depth))) {
                *c += 1;
            }
        }
        // One bucket holds everything: nothing to move at this byte.
        if ends.contains(&v.len()) {
            depth += 1;
            continue;
        }
        let mut total = 0;
        for c in ends.iter_mut() {
            total += *c;
            *c = total;
        }
        // `next[b]`: the first place in bucket b not yet holding one of its own elements.
        let mut next = [0usize; 256];
        if let Some(rest) = next.get_mut(1..) {
            rest.copy_from_slice(ends.get(..255).unwrap_or(&[0; 255]));
        }
        for b in 0..256 {
            let end = ends.get(b).copied().unwrap_or(0);
            loop {
                let at = next.get(b).copied().unwrap_or(end);
                if at >= end {
                    break;
                }
                let home = v.get(at).map_or(b, |x| usize::from(x.byte(depth)));
                if home == b {
                    if let Some(n) = next.get_mut(b) {
                        *n += 1;
                    }
                } else if let Some(n) = next.get_mut(home) {
                    // `home` > b (the buckets before b are full of their own): a place there.
                    if *n < v.len() {
                        v.swap(at, *n);
                    }
                    *n += 1;
                }
            }
        }
        let mut start = 0;
        for &end in ends.iter() {
            if let Some(bucket) = v.get_mut(start..end) {
                if bucket.len() > 1 {
                    radix_from(bucket, depth + 1);
                }
            }
            start = end;
        }
        return;
    }
}

/// Orders `v`, whose elements agree on their first `depth` bytes, by the bytes after.
fn insertion_sort<T: RadixKey>(v: &mut [T], depth: usize) {
    let less = |a: &T, b: &T| {
        for i in depth..T::LEN {
            match a.byte(i).cmp(&b.byte(i)) {
                Ordering::Equal => {}
                o => return o == Ordering::Less,
            }
        }
        false
    };
    for i in 1..v.len() {
        let mut j = i;
        while j > 0 {
            match (v.get(j), v.get(j - 1)) {
                (Some(a), Some(b)) if less(a, b) => v.swap(j, j - 1),
                _ => break,
            }
            j -= 1;
        }
    }
}

/// Sorts `v` by `less` (a strict weak order), not stably: a heapsort.
pub fn heap_sort_by<T>(v: &mut [T], mut less: impl FnMut(&T, &T) -> bool) {
    let mut sift = |v: &mut [T], mut node: usize, len: usize| loop {
        let mut child = 2 * node + 1;
        if child >= len {
            return;
        }
        if child + 1 < len {
            if let (Some(l), Some(r)) = (v.get(child), v.get(child + 1)) {
                if less(l, r) {
                    child += 1;
                }
            }
        }
        match (v.get(node), v.get(child)) {
            (Some(n), Some(c)) if less(n, c) => v.swap(node, child),
            _ => return,
        }
        node = child;
    };
    let len = v.len();
    for node in (0..len / 2).rev() {
        sift(v, node, len);
    }
    for end in (1..len).rev() {
        v.swap(0, end);
        sift(v, 0, end);
    }
}

/// A `u64` by its big-endian bytes: numeric order.
impl RadixKey for u64 {
    const LEN: usize = 8;
    fn byte(&self, i: usize) -> u8 {
        self.to_be_bytes().get(i).copied().unwrap_or(0)
    }
}

/// A key table entry by its hash's bytes, then its key index's (big-endian): (hash, index) order.
impl RadixKey for ([u8; 32], u32) {
    const LEN: usize = 36;
    fn byte(&self, i: usize) -> u8 {
        match self.0.get(i) {
            Some(b) => *b,
            None => self.1.to_be_bytes().get(i - 32).copied().unwrap_or(0),
        }
    }
}

#[cfg(test)]
#[path = "tests/sort_tests.rs"]
mod tests;
