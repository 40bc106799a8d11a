//! The exact text count of a stream event read from bit masks: the positions of the event's
//! quotes, backslashes and `u`s, 64 bytes at a time (16 at a time with wasm SIMD). Without a
//! backslash every quote closes the string the one before it opened, so the strings are read
//! from the quote positions alone, a pair at a time. A block with a backslash (or one an escape
//! reaches into) is read mark by mark: inside a string a backslash escapes the next byte (`\u`
//! the next five), counted as one; outside strings it is an ordinary byte.

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

/// The walk's state across blocks.
struct Walk<'a> {
    b: &'a [u8],
    total: u64,
    /// The opening quote of the string being read, if one is open.
    open: Option<usize>,
    /// Where the value of a counted key opens (`usize::MAX` while none is expected).
    value_at: usize,
    /// The bytes escapes take beyond the one each counts as, in the open string.
    escaped: usize,
    /// The first byte after the last escape read (the bytes before it are escaped).
    skip_to: usize,
    usage: bool,
}

impl Walk<'_> {
    /// One block at `base`.
    #[inline(always)]
    fn block(&mut self, base: usize, block: &[u8; 64], usage: bool) {
        let m = masks(block);
        if usage && !self.usage {
            // A quote followed by `u` (the last byte's next one is in the next block: checked).
            let mut cand = m.quote & ((m.u >> 1) | (1 << 63));
            while cand != 0 {
                let p = base + cand.trailing_zeros() as usize;
                cand &= cand - 1;
                if self.b.get(p..p + 7) == Some(b"\"usage\"") {
                    self.usage = true;
                    break;
                }
            }
        }
        if m.backslash != 0 || self.skip_to > base {
            self.marks(base, m.quote, m.backslash);
            return;
        }
        let mut q = m.quote;
        // A string opened in an earlier block closes at this block's first quote.
        if let Some(s) = self.open {
            if q == 0 {
                return;
            }
            let e = base + q.trailing_zeros() as usize;
            q &= q - 1;
            self.open = None;
            self.string(s, e);
        }
        // Then the quotes a pair at a time.
        while q != 0 {
            let s = base + q.trailing_zeros() as usize;
            q &= q - 1;
            if q == 0 {
                self.open = Some(s);
                self.escaped = 0;
                break;
            }
            let e = base + q.trailing_zeros() as usize;
            q &= q - 1;
            self.escaped = 0;
            self.string(s, e);
        }
    }

    /// A block with escapes: its quotes and backslashes one at a time, in order.
    #[cold]
    fn marks(&mut self, base: usize, quote: u64, backslash: u64) {
        let mut marks = quote | backslash;
        while marks != 0 {
            let bit = marks.trailing_zeros();
            marks &= marks - 1;
            let p = base + bit as usize;
            if p < self.skip_to {
                continue;
            }
            if (quote >> bit) & 1 == 1 {
                match self.open.take() {
                    None => {
                        self.open = Some(p);
                        self.escaped = 0;
                    }
                    Some(s) => self.string(s, p),
                }
            } else if self.open.is_some() {
                let step = if self.b.get(p + 1) == Some(&b'u') { 6 } else { 2 };
                // The escape counts as one byte, however many of its bytes there are.
                let taken = step.min(self.b.len().saturating_sub(p)).max(1);
                self.escaped += taken - 1;
                self.skip_to = p + step;
            }
        }
    }

    /// The string between the quotes at `s` and `e`: a counted value, or a key whose value is
    /// counted, or neither.
    #[inline(always)]
    fn string(&mut self, s: usize, e: usize) {
        let len = e - s - 1;
        if s == self.value_at {
            let len = len.saturating_sub(self.escaped);
            self.total = self.total.saturating_add(len as u64);
            self.value_at = usize::MAX;
            return;
        }
        let name = self.b.get(s + 1..e).unwrap_or(&[]);
        let key = match len {
            4 => name == b"text",
            7 => name == b"content" || name == b"refusal",
            9 => name == b"arguments",
            12 => name == b"partial_json",
            _ => false,
        };
        if !key {
            return;
        }
        let b = self.b;
        let mut j = e + 1;
        while matches!(b.get(j), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            j += 1;
        }
        if b.get(j) != Some(&b':') {
            return;
        }
        j += 1;
        while matches!(b.get(j), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            j += 1;
        }
        // No quote between the key's closing quote and `j`: the next quote opens the value.
        if b.get(j) == Some(&b'"') {
            self.value_at = j;
        }
    }
}

/// (text bytes, whether `"usage"` appears anywhere in `b`). With `usage` false the second is
/// always false.
#[inline]
pub(super) fn text_len(b: &[u8], usage: bool) -> (u64, bool) {
    let mut w = Walk { b, total: 0, open: None, value_at: usize::MAX, escaped: 0, skip_to: 0, usage: false };
    let mut base = 0usize;
    let mut blocks = b.chunks_exact(64);
    for c in &mut blocks {
        let Ok(block) = <&[u8; 64]>::try_from(c) else { break };
        w.block(base, block, usage);
        base += 64;
    }
    let rest = blocks.remainder();
    if !rest.is_empty() {
        // Zero bytes pad the last block: neither quote, backslash nor `u`.
        let mut last = [0u8; 64];
        for (d, s) in last.iter_mut().zip(rest) {
            *d = *s;
        }
        w.block(base, &last, usage);
    }
    // An unterminated counted value: every byte left counts (an escape as one).
    if let Some(s) = w.open {
        if s == w.value_at {
            let left = b.len().saturating_sub(s + 1).saturating_sub(w.escaped);
            w.total = w.total.saturating_add(left as u64);
        }
    }
    (w.total, w.usage)
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
