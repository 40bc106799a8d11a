//! The frame of a stream's previous text event: its bytes before the text and after it. Most
//! events of a stream differ from the one before only in their text, so a byte-level reader that
//! read one event remembers its frame, and the next event that is the same prefix, a string
//! without escapes or control characters, and the same suffix is read by comparing bytes. A
//! reader may remember a frame only when its own read of the event depends on the text in no
//! way but its being such a string: any other such string in its place would read the same.
//! A frame may also leave free one unsigned integer after the text that the read skips (a
//! sequence number): any other one in its place reads the same.

use crate::sse;

#[derive(Debug, Default)]
pub(crate) struct Frame {
    /// The previous event's bytes before its text, then those after it.
    bytes: Vec<u8>,
    /// The length of the part before the text; 0: no frame (an event's text never starts it:
    /// it is inside a string, after the opening `{`).
    split: usize,
    /// Where the free integer is in the part after the text (offsets from its start).
    slot: Option<(usize, usize)>,
}

impl Frame {
    /// The span of `data`'s text when `data` is the frame's prefix, a string's content without
    /// escapes or control characters, and the frame's suffix.
    pub(crate) fn text_span(&self, data: &str) -> Option<(usize, usize)> {
        if self.split == 0 {
            return None;
        }
        let (pre, suf) = (self.bytes.get(..self.split)?, self.bytes.get(self.split..)?);
        let b = data.as_bytes();
        if !same(b.get(..self.split)?, pre) {
            return None;
        }
        let rest = b.get(self.split..)?;
        // The text ends at its first quote, backslash or control character: the suffix starts
        // with the closing quote, so anything else there differs from it.
        let len = sse::json_special(rest)?;
        let tail = rest.get(len..)?;
        let Some((a, z)) = self.slot else {
            return same(tail, suf).then_some((self.split, self.split + len));
        };
        if !same(tail.get(..a)?, suf.get(..a)?) {
            return None;
        }
        // An unsigned integer in JSON's form (no leading zero), then the rest of the suffix,
        // which starts with what ended the remembered one (not a digit).
        let num = tail.get(a..)?;
        let digits = num.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 || (digits > 1 && num.first() == Some(&b'0')) {
            return None;
        }
        same(num.get(digits..)?, suf.get(z..)?).then_some((self.split, self.split + len))
    }

    /// Whether a frame is kept.
    pub(crate) fn is_set(&self) -> bool {
        self.split != 0
    }

    /// No frame kept.
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.split = 0;
        self.slot = None;
    }

    /// `data` read with its text at `start..end`: its frame is kept for the next event (the
    /// buffer is reused). A span that cannot be one (empty prefix, out of bounds) clears it.
    pub(crate) fn remember(&mut self, data: &str, start: usize, end: usize) {
        self.remember_with_slot(data, start, end, None);
    }

    /// As `remember`, the unsigned integer at `slot` (after the text, digits only) left free.
    pub(crate) fn remember_with_slot(&mut self, data: &str, start: usize, end: usize, slot: Option<(usize, usize)>) {
        let b = data.as_bytes();
        self.bytes.clear();
        self.split = 0;
        self.slot = None;
        let slot = match slot {
            // Offsets from the end of the text; a slot of anything but digits is no frame.
            Some((a, z)) => match b.get(a..z) {
                Some(n @ [_, ..]) if a >= end && n.iter().all(u8::is_ascii_digit) => Some((a - end, z - end)),
                _ => return,
            },
            None => None,
        };
        if let (Some(pre @ [_, ..]), Some(suf)) = (b.get(..start), b.get(end..)) {
            self.bytes.extend_from_slice(pre);
            self.bytes.extend_from_slice(suf);
            self.split = start;
            self.slot = slot;
        }
    }
}

/// `a == b`, compared eight bytes at a time without a branch per word (a byte loop where the
/// target's `memcmp` is one).
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let ((x, xr), (y, yr)) = (a.as_chunks::<8>(), b.as_chunks::<8>());
    let diff = x.iter().zip(y).fold(0u64, |d, (p, q)| d | (u64::from_ne_bytes(*p) ^ u64::from_ne_bytes(*q)));
    diff == 0 && xr == yr
}

/// Texts a frame must tell apart, for the upstream readers' property tests: plain, one byte,
/// empty, not ASCII, and with an escape, an escaped quote, a control character, a raw quote.
#[cfg(test)]
pub(crate) const TEST_TEXTS: [&str; 8] = ["tok 1 ", "t", "", "h\u{e9} \u{1f600}", "a\\nb", "a\\\"b", "a\u{1}b", "a\"b"];

#[cfg(test)]
#[path = "tests/frame_tests.rs"]
mod tests;
