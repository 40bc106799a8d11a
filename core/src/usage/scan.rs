//! The exact text count of a stream event read from bit masks: the positions of the event's
//! quotes, backslashes and `u`s, 64 bytes at a time (16 at a time with wasm SIMD). Without a
//! backslash every quote closes the string the one before it opened, so the strings are read
//! from the quote positions alone, a pair at a time. A block with a backslash (or one an escape
//! reaches into) is read mark by mark: inside a string a backslash escapes the next byte (`\u`
//! the next five), counted as one; outside strings it is an ordinary byte. A string is a key
//! whose value counts only at one of the keys' lengths, then compared a word or two at a time;
//! the walk's state stays in locals, and a last partial block is read from the slice's last 64
//! bytes (shifted) rather than copied.

/// The quote, backslash and `u` masks of a 64-byte block: bit `i` set when byte `i` is one.
struct Masks {
    quote: u64,
    backslash: u64,
    u: u64,
}

/// wasm SIMD: a 16-byte lane compared three times, each comparison's high bits gathered in one
/// instruction (`i8x16.bitmask`).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn masks(block: &[u8; 64]) -> Masks {
    use core::arch::wasm32::{i8x16_bitmask, i8x16_eq, u64x2, u8x16_splat};
    let mut m = Masks { quote: 0, backslash: 0, u: 0 };
    // Each lane from two 8-byte loads (built from its 16 bytes one by one, the lane would be
    // sixteen one-byte inserts when the loop is not unrolled).
    let (words, _) = block.as_chunks::<8>();
    for (k, pair) in words.chunks_exact(2).enumerate() {
        let (Some(lo), Some(hi)) = (pair.first(), pair.get(1)) else { continue };
        let v = u64x2(u64::from_le_bytes(*lo), u64::from_le_bytes(*hi));
        let shift = 16 * k as u32;
        m.quote |= u64::from(i8x16_bitmask(i8x16_eq(v, u8x16_splat(b'"')))) << shift;
        m.backslash |= u64::from(i8x16_bitmask(i8x16_eq(v, u8x16_splat(b'\\')))) << shift;
        m.u |= u64::from(i8x16_bitmask(i8x16_eq(v, u8x16_splat(b'u')))) << shift;
    }
    m
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
fn masks(block: &[u8; 64]) -> Masks {
    masks_portable(block)
}

/// Eight bytes at a time in a word: the high bit of each matching byte, exactly (no carry crosses
/// a byte), gathered into the word's low eight bits by one multiplication.
#[cfg_attr(all(target_arch = "wasm32", target_feature = "simd128"), allow(dead_code))]
fn masks_portable(block: &[u8; 64]) -> Masks {
    const LO: u64 = 0x0101_0101_0101_0101;
    const L7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HI: u64 = 0x8080_8080_8080_8080;
    // The high bit of each zero byte of `x`.
    let zero = |x: u64| !(((x & L7) + L7) | x) & HI;
    // Byte `i`'s high bit to bit `i`.
    let gather = |x: u64| (x >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56;
    let mut m = Masks { quote: 0, backslash: 0, u: 0 };
    for (k, w) in block.chunks_exact(8).enumerate() {
        let Ok(w) = <[u8; 8]>::try_from(w) else { continue };
        let v = u64::from_le_bytes(w);
        let shift = 8 * k as u32;
        m.quote |= gather(zero(v ^ (LO * u64::from(b'"')))) << shift;
        m.backslash |= gather(zero(v ^ (LO * u64::from(b'\\')))) << shift;
        m.u |= gather(zero(v ^ (LO * u64::from(b'u')))) << shift;
    }
    m
}

/// The walk's state across blocks. The hot path keeps it in locals: only the cold path for a
/// block with escapes gets it and gives it back, by value (a `&mut` to it would keep every field
/// in memory on the hot path too).
#[derive(Clone, Copy)]
struct Walk {
    total: u64,
    /// The opening quote of the string being read (`NONE` while none is open).
    open: usize,
    /// Where the value of a counted key opens (`NONE` while none is expected).
    value_at: usize,
    /// The bytes escapes take beyond the one each counts as, in the open string.
    escaped: usize,
    /// The first byte after the last escape read (the bytes before it are escaped).
    skip_to: usize,
    usage: bool,
}

/// No position (a byte's offset in a slice is always below it).
const NONE: usize = usize::MAX;

const CONTENT: u64 = u64::from_le_bytes(*b"\"content");
const REFUSAL: u64 = u64::from_le_bytes(*b"\"refusal");
const ARGUMENT: u64 = u64::from_le_bytes(*b"argument");
const PARTIAL: u64 = u64::from_le_bytes(*b"partial_");
const TEXT: u32 = u32::from_le_bytes(*b"text");
const JSON: u32 = u32::from_le_bytes(*b"json");
/// `"usage"` (its closing quote checked apart).
const USAGE: u64 = u64::from_le_bytes(*b"\"usage\"\0") & 0x00ff_ffff_ffff_ffff;

#[inline(always)]
fn word8(b: &[u8], p: usize) -> Option<u64> {
    b.get(p..p.wrapping_add(8)).and_then(|w| <[u8; 8]>::try_from(w).ok()).map(u64::from_le_bytes)
}

#[inline(always)]
fn word4(b: &[u8], p: usize) -> Option<u32> {
    b.get(p..p.wrapping_add(4)).and_then(|w| <[u8; 4]>::try_from(w).ok()).map(u32::from_le_bytes)
}

/// Whether `"usage"` starts at `p`: one word compared when eight bytes are left.
#[inline(always)]
fn usage_at(b: &[u8], p: usize) -> bool {
    match word8(b, p) {
        Some(w) => w & 0x00ff_ffff_ffff_ffff == USAGE,
        None => b.get(p..p.wrapping_add(7)) == Some(b"\"usage\""),
    }
}

/// Whether the string whose quotes are at `s` and `e` is a key whose string value is counted:
/// `text`, `content`, `refusal`, `arguments` or `partial_json`, read by its length and then a
/// word or two (every byte read lies between the two quotes, the opening one included).
#[inline(always)]
fn counted_key(b: &[u8], s: usize, e: usize) -> bool {
    match e - s - 1 {
        4 => word4(b, s + 1) == Some(TEXT),
        7 => matches!(word8(b, s), Some(w) if w == CONTENT || w == REFUSAL),
        9 => word8(b, s + 1) == Some(ARGUMENT) && b.get(s + 9) == Some(&b's'),
        12 => word8(b, s + 1) == Some(PARTIAL) && word4(b, s + 9) == Some(JSON),
        _ => false,
    }
}

impl Walk {
    /// A block with escapes (or one an escape reaches into): its quotes and backslashes one at
    /// a time, in order.
    #[cold]
    #[inline(never)]
    fn marks(mut self, b: &[u8], base: usize, quote: u64, backslash: u64) -> Walk {
        let mut marks = quote | backslash;
        while marks != 0 {
            let bit = marks.trailing_zeros();
            marks &= marks - 1;
            let p = base + bit as usize;
            if p < self.skip_to {
                continue;
            }
            if (quote >> bit) & 1 == 1 {
                if self.open == NONE {
                    self.open = p;
                    self.escaped = 0;
                } else {
                    let s = self.open;
                    self.open = NONE;
                    let (total, value_at) = string(b, s, p, self.total, self.value_at, self.escaped);
                    self.total = total;
                    self.value_at = value_at;
                }
            } else if self.open != NONE {
                let step = if b.get(p + 1) == Some(&b'u') { 6 } else { 2 };
                // The escape counts as one byte, however many of its bytes there are.
                let taken = step.min(b.len().saturating_sub(p)).max(1);
                self.escaped += taken - 1;
                self.skip_to = p + step;
            }
        }
        self
    }
}

/// The string between the quotes at `s` and `e`: a counted value (added to `total`), or a key
/// whose value is counted (where that value opens, if it is a string, becomes `value_at`), or
/// neither. Returns the new `(total, value_at)`.
#[inline(always)]
fn string(b: &[u8], s: usize, e: usize, total: u64, value_at: usize, escaped: usize) -> (u64, usize) {
    if s == value_at {
        let len = (e - s - 1).saturating_sub(escaped);
        return (total.saturating_add(len as u64), NONE);
    }
    if !counted_key(b, s, e) {
        return (total, value_at);
    }
    (total, key_value(b, e))
}

/// Where the string value of the key closed at `e` opens: past whitespace, a colon and
/// whitespace, a quote (`NONE` when the value is not a string or there is no colon).
#[inline(never)]
fn key_value(b: &[u8], e: usize) -> usize {
    let mut j = e + 1;
    while matches!(b.get(j), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        j += 1;
    }
    if b.get(j) != Some(&b':') {
        return NONE;
    }
    j += 1;
    while matches!(b.get(j), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        j += 1;
    }
    // No quote between the key's closing quote and `j`: the next quote opens the value.
    if b.get(j) == Some(&b'"') {
        j
    } else {
        NONE
    }
}

/// (text bytes, whether `"usage"` appears anywhere in `b`). With `usage` false the second is
/// always false.
#[inline]
pub(super) fn text_len(b: &[u8], usage: bool) -> (u64, bool) {
    let mut w = Walk { total: 0, open: NONE, value_at: NONE, escaped: 0, skip_to: 0, usage: false };
    let n = b.len();
    let mut base = 0usize;
    while base < n {
        let m = match b.get(base..base + 64).and_then(|c| <&[u8; 64]>::try_from(c).ok()) {
            Some(block) => masks(block),
            None => tail_masks(b, base),
        };
        if usage && !w.usage {
            // A quote followed by `u` (the last byte's next one is in the next block: checked).
            let mut cand = m.quote & ((m.u >> 1) | (1 << 63));
            while cand != 0 {
                let p = base + cand.trailing_zeros() as usize;
                cand &= cand - 1;
                if usage_at(b, p) {
                    w.usage = true;
                    break;
                }
            }
        }
        if m.backslash != 0 || w.skip_to > base {
            w = w.marks(b, base, m.quote, m.backslash);
            base += 64;
            continue;
        }
        let mut q = m.quote;
        // A string opened in an earlier block closes at this block's first quote.
        if w.open != NONE {
            if q == 0 {
                base += 64;
                continue;
            }
            let e = base + q.trailing_zeros() as usize;
            q &= q - 1;
            (w.total, w.value_at) = string(b, w.open, e, w.total, w.value_at, w.escaped);
            w.open = NONE;
        }
        // Then the quotes a pair at a time.
        while q != 0 {
            let s = base + q.trailing_zeros() as usize;
            q &= q - 1;
            if q == 0 {
                w.open = s;
                w.escaped = 0;
                break;
            }
            let e = base + q.trailing_zeros() as usize;
            q &= q - 1;
            (w.total, w.value_at) = string(b, s, e, w.total, w.value_at, 0);
        }
        base += 64;
    }
    // An unterminated counted value: every byte left counts (an escape as one).
    if w.open != NONE && w.open == w.value_at {
        let left = n.saturating_sub(w.open + 1).saturating_sub(w.escaped);
        w.total = w.total.saturating_add(left as u64);
    }
    (w.total, w.usage)
}

/// The masks of the last, partial block at `base`: from the slice's last 64 bytes when it has
/// that many (the bytes before `base` shifted out), else from a copy padded with zero bytes
/// (neither quote, backslash nor `u`).
#[inline(never)]
fn tail_masks(b: &[u8], base: usize) -> Masks {
    let rest = b.len() - base;
    if let Some(last) = b.last_chunk::<64>() {
        // 1..=63 bytes of the block are in `b`: the shift is below 64.
        let shift = (64 - rest) as u32;
        let m = masks(last);
        return Masks { quote: m.quote >> shift, backslash: m.backslash >> shift, u: m.u >> shift };
    }
    let mut last = [0u8; 64];
    for (d, s) in last.iter_mut().zip(b.get(base..).unwrap_or(&[])) {
        *d = *s;
    }
    masks(&last)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The masks the build uses (wasm SIMD in the filter) are the portable ones, bit for bit.
        #[test]
        fn masks_match_the_portable_ones(
            v in proptest::collection::vec(proptest::sample::select(vec![b'"', b'\\', b'u', b'a', 0u8, 0x80, 0xff]), 64),
        ) {
            let block = <[u8; 64]>::try_from(v.as_slice()).unwrap_or([0; 64]);
            let (m, p) = (masks(&block), masks_portable(&block));
            let want = |x: u8| block.iter().enumerate().fold(0u64, |m, (i, &c)| m | (u64::from(c == x) << i));
            proptest::prop_assert_eq!((m.quote, m.backslash, m.u), (p.quote, p.backslash, p.u));
            proptest::prop_assert_eq!((p.quote, p.backslash, p.u), (want(b'"'), want(b'\\'), want(b'u')));
        }
    }

    #[test]
    fn the_quote_walk_counts_text_values_only() {
        let ev = br#"{"id":"c","choices":[{"delta":{"content":"tok1 "},"text": "ab","refusal" : null}]}"#;
        assert_eq!(text_len(ev, true), (7, false));
        // A key's value opens in the next block; an unterminated value counts every byte left.
        let mut long = format!(r#"{{"{}":1,"usage":{{}},"arguments":"#, "x".repeat(60)).into_bytes();
        long.extend_from_slice(br#""{}"}"#);
        assert_eq!(text_len(&long, true), (2, true));
        assert_eq!(text_len(br#"{"content":"unterminated"#, false), (12, false));
        // `"usage"` whose quote is a block's last byte.
        for at in [62, 63, 64, 127] {
            let mut ev = vec![b' '; at];
            ev.extend_from_slice(br#""usage":{}"#);
            assert_eq!(text_len(&ev, true), (0, true), "at {at}");
        }
        // Escapes count as one byte; outside strings a backslash is an ordinary byte.
        assert_eq!(text_len(br#"{"content":"a\"b\u00e9"}"#, true), (4, false));
        assert_eq!(text_len(br#"\{"text":"\\\""}\"#, false), (2, false));
    }
}
