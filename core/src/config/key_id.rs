//! A key's id as the key records hold it: an id of up to 18 bytes (every default id, `key-` and
//! 12 hex digits, and what `tollgate-keytool add-key` mints) is stored in the record itself, a
//! longer one on the heap. A million keys from a `key_table` then cost no allocation for their
//! ids (a `String` each cost 24 bytes in the record and a heap block of its own).

use std::fmt;
use std::ops::Deref;

/// The longest id stored inline.
const INLINE: usize = 18;

#[derive(Clone, PartialEq, Eq)]
pub struct KeyId(Repr);

/// Invariant: an id of at most `INLINE` bytes is always `Inline`, its unused bytes zero, so
/// that the derived equality is the ids' equality.
#[derive(Clone, PartialEq, Eq)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

impl KeyId {
    pub fn new(id: &str) -> KeyId {
        match (u8::try_from(id.len()), id.len() <= INLINE) {
            (Ok(len), true) => {
                let mut bytes = [0u8; INLINE];
                for (b, s) in bytes.iter_mut().zip(id.bytes()) {
                    *b = s;
                }
                KeyId(Repr::Inline { len, bytes })
            }
            _ => KeyId(Repr::Heap(id.into())),
        }
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Always valid UTF-8 (a whole `&str` was copied in): the fallback is never taken.
            Repr::Inline { len, bytes } => {
                bytes.get(..usize::from(*len)).and_then(|b| std::str::from_utf8(b).ok()).unwrap_or_default()
            }
            Repr::Heap(s) => s,
        }
    }
}

impl Deref for KeyId {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for KeyId {
    fn from(id: &str) -> KeyId {
        KeyId::new(id)
    }
}

impl From<String> for KeyId {
    fn from(id: String) -> KeyId {
        match id.len() <= INLINE {
            true => KeyId::new(&id),
            false => KeyId(Repr::Heap(id.into_boxed_str())),
        }
    }
}

impl PartialEq<str> for KeyId {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for KeyId {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for KeyId {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_are_inline_long_ones_on_the_heap_and_both_read_back() {
        for id in ["", "a", "key-0123456789ab", "exactly-18-bytes-x", "nineteen-bytes-long", "ünïcødé-ïd-long-enough"]
        {
            let k = KeyId::new(id);
            assert_eq!(k.as_str(), id);
            assert_eq!(KeyId::from(id.to_string()), k);
            assert_eq!(matches!(k.0, Repr::Inline { .. }), id.len() <= INLINE, "{id}");
        }
        assert_ne!(KeyId::new("key-a"), KeyId::new("key-b"));
        assert_eq!(std::mem::size_of::<KeyId>(), 24);
    }
}
