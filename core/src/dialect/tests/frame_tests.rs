//! Tests of `frame.rs`: an event is read by its frame only when it is the frame's bytes around
//! a plain string.
use super::*;

#[test]
fn no_frame_reads_nothing() {
    let f = Frame::default();
    assert_eq!(f.text_span(r#"{"t":"a"}"#), None);
}

#[test]
fn the_same_frame_around_another_plain_text_is_read() {
    let mut f = Frame::default();
    let first = r#"{"id":"x","t":"tok 1 ","n":null}"#;
    f.remember(first, 15, 21);
    assert_eq!(f.text_span(first), Some((15, 21)));
    assert_eq!(f.text_span(r#"{"id":"x","t":"","n":null}"#), Some((15, 15)));
    assert_eq!(f.text_span(r#"{"id":"x","t":"a much longer text, hello","n":null}"#), Some((15, 40)));
    let other = "{\"id\":\"x\",\"t\":\"h\u{e9}\",\"n\":null}";
    assert_eq!(f.text_span(other), Some((15, 18)));
    assert_eq!(other.get(15..18), Some("h\u{e9}"));
}

#[test]
fn anything_else_is_not() {
    let mut f = Frame::default();
    f.remember(r#"{"id":"x","t":"tok","n":null}"#, 15, 18);
    for d in [
        // An escape, a control character, a quote ending the text early.
        r#"{"id":"x","t":"a\nb","n":null}"#,
        "{\"id\":\"x\",\"t\":\"a\u{1}b\",\"n\":null}",
        r#"{"id":"x","t":"a","b","n":null}"#,
        // Another prefix or suffix, a cut or longer event.
        r#"{"id":"y","t":"tok","n":null}"#,
        r#"{"id":"x","t":"tok","n":nul}"#,
        r#"{"id":"x","t":"tok","n":null} "#,
        r#"{"id":"x","t":"tok","n":null}}"#,
        r#"{"id":"x","t":"tok""#,
        r#"{"id":"x","t":"tok"#,
        r#"{"id":"x""#,
        "",
    ] {
        assert_eq!(f.text_span(d), None, "{d}");
    }
}

#[test]
fn a_span_that_cannot_be_one_clears_the_frame() {
    let mut f = Frame::default();
    let d = r#"{"t":"a"}"#;
    f.remember(d, 6, 7);
    assert_eq!(f.text_span(d), Some((6, 7)));
    f.remember(d, 0, 1);
    assert_eq!(f.text_span(d), None);
    f.remember(d, 6, 99);
    assert_eq!(f.text_span(d), None);
}

#[test]
fn same_compares_every_byte() {
    let a: Vec<u8> = (0..40u8).collect();
    for len in 0..a.len() {
        let x = a.get(..len).unwrap_or_default();
        assert!(same(x, x));
        assert!(!same(x, a.get(..len + 1).unwrap_or_default()));
        for i in 0..len {
            let mut y = x.to_vec();
            if let Some(b) = y.get_mut(i) {
                *b ^= 0x80;
            }
            assert!(!same(x, &y), "{len} {i}");
        }
    }
}

#[test]
fn a_free_integer_may_change() {
    let mut f = Frame::default();
    let d = r#"{"t":"tok","n":17,"z":1}"#;
    f.remember_with_slot(d, 6, 9, Some((15, 17)));
    for (d, want) in [
        (r#"{"t":"tok","n":17,"z":1}"#, Some((6, 9))),
        (r#"{"t":"ab","n":18,"z":1}"#, Some((6, 8))),
        (r#"{"t":"","n":0,"z":1}"#, Some((6, 6))),
        (r#"{"t":"x","n":123456789,"z":1}"#, Some((6, 7))),
        (r#"{"t":"x","n":017,"z":1}"#, None),
        (r#"{"t":"x","n":-1,"z":1}"#, None),
        (r#"{"t":"x","n":,"z":1}"#, None),
        (r#"{"t":"x","n":1.5,"z":1}"#, None),
        (r#"{"t":"x","n":1,"z":2}"#, None),
        (r#"{"t":"x","m":1,"z":1}"#, None),
        (r#"{"t":"x","n":1"#, None),
    ] {
        assert_eq!(f.text_span(d), want, "{d}");
    }
    // A slot before the text's end, or of anything but digits, is no frame.
    f.remember_with_slot(d, 6, 9, Some((3, 4)));
    assert_eq!(f.text_span(d), None);
    f.remember_with_slot(d, 6, 9, Some((14, 17)));
    assert_eq!(f.text_span(d), None);
}
