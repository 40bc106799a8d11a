//! Tests of `stream.rs`: the fronts' text writers (their kept tails) write what the chunk's
//! `Value` writes, whatever the ids and blocks in between.
use super::*;
use crate::dialect::{anthropic, gemini, openai, responses};

#[test]
fn a_text_tail_is_rebuilt_when_its_key_changes() {
    let mut t = TextTail::default();
    let mut built = 0;
    for (key, want) in [("a", "<a>"), ("a", "<a>"), ("b", "<b>"), ("", "<>"), ("", "<>"), ("a", "<a>")] {
        let got = t.get(key.as_bytes(), |b| {
            built += 1;
            b.extend_from_slice(format!("<{key}>").as_bytes());
        });
        assert_eq!(got, want.as_bytes());
    }
    assert_eq!(built, 4);
}

/// The client's bytes for `texts` (id, text) written by `on_text`, and by `on_chunk` of each
/// chunk's `Value`, by two fresh fronts from `make`.
fn both(make: impl Fn() -> Box<dyn FrontStream>, texts: &[(&str, &str)]) -> (String, String) {
    let (mut a, mut b) = (make(), make());
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for &(id, text) in texts {
        let c = TextChunk { id: Cow::Borrowed(id), text: Cow::Borrowed(text) };
        a.on_text(&c, &mut x);
        b.on_chunk(&c.to_value(), &mut y);
    }
    (String::from_utf8_lossy(&x).into_owned(), String::from_utf8_lossy(&y).into_owned())
}

/// A maker of fresh front halves.
type MakeFront = Box<dyn Fn() -> Box<dyn FrontStream>>;

#[test]
fn every_front_writes_text_as_its_chunk() {
    let texts = [("c1", ""), ("c1", "a"), ("c1", "b\"c\n"), ("c2", "d"), ("c2", ""), ("c1", "h\u{e9}"), ("", "e")];
    let fronts: [(&str, MakeFront); 4] = [
        ("openai", Box::new(|| Box::new(openai::StreamFromPivot::at("m", false, 7)))),
        ("anthropic", Box::new(|| Box::new(anthropic::StreamFromPivot::new("m")))),
        ("gemini", Box::new(|| Box::new(gemini::StreamFromPivot::new("m")))),
        ("responses", Box::new(|| Box::new(responses::StreamFromPivot::new("m", 7)))),
    ];
    for (name, make) in fronts {
        let (text, chunk) = both(make, &texts);
        assert_eq!(text, chunk, "{name}");
        assert_eq!(text.matches("h\u{e9}").count(), 1, "{name}");
    }
    // The OpenAI front names each chunk's own id.
    let (text, _) = both(|| Box::new(openai::StreamFromPivot::at("m", false, 7)), &texts);
    assert_eq!(text.matches(r#""id":"c2""#).count(), 2);
    assert_eq!(text.matches(r#""id":"c1""#).count(), 4);
}

#[test]
fn object_data_is_the_trimmed_object() {
    for (data, want) in [
        ("{}", Some("{}")),
        ("{\"a\":1}", Some("{\"a\":1}")),
        (" {} ", Some("{}")),
        ("{} \n", Some("{}")),
        ("\u{a0}{\"a\":1}\u{2028}", Some("{\"a\":1}")),
        ("{\"a\":1", Some("{\"a\":1")),
        ("[1]", None),
        (" [1] ", None),
        ("x{}", None),
        ("", None),
    ] {
        let ev = EventOf { event: None, data: Cow::Borrowed(data) };
        assert_eq!(object_data(&ev), want, "{data:?}");
    }
}
