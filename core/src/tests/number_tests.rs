use proptest::prelude::*;

use super::parse_f64;

/// What the callers kept of `str::parse::<f64>`: finite values only.
fn reference(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|f| f.is_finite())
}

#[test]
fn the_forms_str_parse_reads_are_read_alike() {
    for s in [
        "0",
        "1",
        "-1",
        "+1",
        "12.5",
        ".5",
        "5.",
        "-.5",
        "+.5",
        "007",
        "00.25",
        "0.000",
        "1e5",
        "1E5",
        "1e+5",
        "1e-5",
        "2.5e3",
        ".5e1",
        "5.e1",
        "1e05",
        "-0",
        "0.1",
        "123456789012345",
        "1000000",
        "0.001",
        "1e22",
        "1e-22",
        "1e400",
        "1e-400",
    ] {
        assert_eq!(parse_f64(s).map(f64::to_bits), reference(s).map(f64::to_bits), "{s}");
    }
}

#[test]
fn what_str_parse_refuses_or_reads_as_not_finite_is_refused() {
    for s in [
        "", "+", "-", ".", "-.", "e5", ".e5", "1e", "1e+", "1.2.3", "1 ", " 1", "1_000", "0x10", "inf", "-inf",
        "infinity", "NaN", "nan", "1e5x", "--1", "+-1", "１",
    ] {
        assert_eq!(parse_f64(s), None, "{s}");
        assert_eq!(reference(s), None, "{s}");
    }
}

proptest! {
    #[test]
    fn short_decimals_are_the_same_value(
        sign in prop::sample::select(vec!["", "+", "-"]),
        int in "[0-9]{0,8}",
        frac in prop::option::of("[0-9]{0,7}"),
        exp in prop::option::of((prop::sample::select(vec!["e", "E"]), prop::sample::select(vec!["", "+", "-"]), 0u32..8)),
    ) {
        let mut s = format!("{sign}{int}");
        if let Some(f) = &frac {
            s.push('.');
            s.push_str(f);
        }
        if let Some((e, es, n)) = &exp {
            s.push_str(&format!("{e}{es}{n}"));
        }
        prop_assert_eq!(parse_f64(&s).map(f64::to_bits), reference(&s).map(f64::to_bits), "{}", s);
    }
}
