//! Text from bytes, ASCII first: most of what a stream carries (JSON events) is ASCII, which is
//! recognized 16 bytes at a time and needs no UTF-8 decoding; any
//! other bytes get the standard UTF-8 check, with exactly its result.

/// `b` as text when it is valid UTF-8, `None` otherwise: the same answer as
/// `std::str::from_utf8(b).ok()`, found faster when `b` is ASCII.
#[inline]
pub(crate) fn utf8(b: &[u8]) -> Option<&str> {
    if is_ascii(b) {
        // SAFETY: every byte is below 0x80, and ASCII bytes are valid UTF-8 one by one.
        return Some(unsafe { std::str::from_utf8_unchecked(b) });
    }
    std::str::from_utf8(b).ok()
}

/// Whether every byte of `b` is below 0x80: 16 bytes at a time, the blocks ORed together and
/// their high bits read once at the end; the last block is the slice's last 16 bytes (it may
/// overlap the one before), so no byte is read alone unless `b` is shorter than 16.
#[inline]
pub(crate) fn is_ascii(b: &[u8]) -> bool {
    let Some(last) = b.last_chunk::<16>() else { return b.is_ascii() };
    let mut acc = block::load(last);
    for c in b.chunks_exact(16) {
        if let Ok(c) = <&[u8; 16]>::try_from(c) {
            acc = block::or(acc, block::load(c));
        }
    }
    !block::high(acc)
}

/// 16 bytes as one `u128`: two 64-bit loads and ORs (wasm's `i64.load`, x86-64's registers).
/// A simd128 vector built from a `[u8; 16]` without `unsafe` is 16 one-byte lane loads in
/// wasm, which V8 ran slower than the word-at-a-time UTF-8 check this replaces.
mod block {
    #[inline(always)]
    pub fn load(c: &[u8; 16]) -> u128 {
        u128::from_le_bytes(*c)
    }

    #[inline(always)]
    pub fn or(a: u128, b: u128) -> u128 {
        a | b
    }

    /// Whether any byte has its high bit set.
    #[inline(always)]
    pub fn high(v: u128) -> bool {
        v & u128::from_le_bytes([0x80; 16]) != 0
    }
}

#[cfg(test)]
#[path = "tests/ascii_tests.rs"]
mod tests;
