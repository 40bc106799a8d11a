//! Tests of `ascii.rs`.
use super::*;

proptest::proptest! {
    /// The same answer as the standard library's, for every length around the 16-byte blocks
    /// and a non-ASCII byte (or a whole character) anywhere, the overlapping last block included.
    #[test]
    fn utf8_is_from_utf8(
        b in proptest::collection::vec(proptest::sample::select(vec![b'a', b'{', b'"', 0, 0x7f, 0x80, 0xbf, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0xff]), 0..70),
        ascii_len in 0usize..70,
        at in 0usize..70,
        ch in proptest::sample::select(vec!["é", "€", "\u{1F600}", "\u{80}", "\u{7f}"]),
    ) {
        proptest::prop_assert_eq!(utf8(&b), std::str::from_utf8(&b).ok());
        proptest::prop_assert_eq!(is_ascii(&b), b.is_ascii());
        let mut s = "x".repeat(ascii_len);
        s.insert_str(at.min(s.len()), ch);
        proptest::prop_assert_eq!(utf8(s.as_bytes()), Some(s.as_str()));
        proptest::prop_assert_eq!(is_ascii(s.as_bytes()), s.is_ascii());
    }
}

#[test]
fn one_high_byte_at_each_position_of_each_length() {
    for len in 0..50 {
        let mut b = vec![b'a'; len];
        assert!(is_ascii(&b), "{len}");
        for i in 0..len {
            b[i] = 0x80;
            assert!(!is_ascii(&b), "{len} {i}");
            assert_eq!(utf8(&b), None, "{len} {i}");
            b[i] = b'a';
        }
    }
}
