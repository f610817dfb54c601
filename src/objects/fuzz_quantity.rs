//! Fuzzing resource quantities (`resources.requests.cpu: 250m`): users write
//! them, admission, the scheduler and the kubelet read them. Parsing never
//! panics, equal values spelled differently are equal, a larger number is
//! never a smaller quantity, and whole values convert exactly.
//! `PROPTEST_CASES` scales the runs.

use proptest::prelude::*;

use super::quantity::{cpu_millis, units, Quantity};
use crate::objects::fuzz_config::config;

/// Text in the quantity alphabet, and anything else.
fn quantity_text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,24}",
        "[-+]?[0-9.]{0,45}[eEinumkKMGTP]{0,3}[-+]?[0-9]{0,12}",
        "[-+]?[0-9]{0,40}(\\.[0-9]{0,40})?(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|e-?[0-9]{1,11})?",
    ]
}

const SUFFIXES: [(&str, u128, u32); 12] = [
    ("", 1, 0),
    ("k", 1_000, 0),
    ("M", 1_000_000, 0),
    ("G", 1_000_000_000, 0),
    ("T", 1_000_000_000_000, 0),
    ("P", 1_000_000_000_000_000, 0),
    ("Ki", 1 << 10, 0),
    ("Mi", 1 << 20, 0),
    ("Gi", 1 << 30, 0),
    ("e3", 1_000, 0),
    ("e6", 1_000_000, 0),
    ("m", 1, 3),
];

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn fuzz_quantity_text_parses_or_is_an_error(text in quantity_text()) {
        if let Ok(q) = Quantity::parse(&text) {
            let _ = (q.millis(), q.units(), q.is_negative());
            // A sign in front negates, whatever the number.
            if !text.starts_with(['-', '+']) {
                let neg = Quantity::parse(&format!("-{text}")).unwrap();
                let zero = Quantity::parse("0").unwrap();
                prop_assert_eq!(neg.is_negative(), q > zero);
                prop_assert!(neg <= q);
            }
        }
        let _ = (cpu_millis(&text), units(&text));
    }

    #[test]
    fn fuzz_whole_values_convert_exactly(n in any::<u32>(), suffix in 0..SUFFIXES.len()) {
        let (s, factor, milli_digits) = SUFFIXES[suffix];
        let text = format!("{n}{s}");
        let exact = u128::from(n) * factor;
        let want_units = if milli_digits == 3 { exact.div_ceil(1000) } else { exact };
        prop_assert_eq!(units(&text).map(u128::from), Ok(want_units.min(u128::from(u64::MAX))), "{}", text);
        let want_millis = if milli_digits == 3 { exact } else { exact * 1000 };
        prop_assert_eq!(cpu_millis(&text).map(u128::from), Ok(want_millis.min(u128::from(u64::MAX))), "{}", text);
    }

    #[test]
    fn fuzz_equal_values_are_equal_whatever_the_spelling(n in 0u64..1_000_000_000_000, frac in 0u32..1000) {
        let q = |s: String| Quantity::parse(&s).unwrap();
        prop_assert_eq!(q(format!("{n}")), q(format!("{n}000m")));
        prop_assert_eq!(q(format!("{n}k")), q(format!("{n}e3")));
        prop_assert_eq!(q(format!("{n}k")), q(format!("{n}000")));
        prop_assert_eq!(q(format!("{n}.{frac:03}")), q(format!("{}m", u128::from(n) * 1000 + u128::from(frac))));
        prop_assert_eq!(q(format!("{n}Ki")), q(format!("{}", u128::from(n) * 1024)));
    }

    #[test]
    fn fuzz_a_larger_number_is_never_a_smaller_quantity(
        int in "[1-9][0-9]{0,44}",
        frac in "[0-9]{0,44}",
        extra in "[1-9]",
        suffix in "(|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|e-?[0-9]{1,2})",
    ) {
        // Appending a non-zero digit to the fraction makes the number larger.
        let smaller = Quantity::parse(&format!("{int}.{frac}{suffix}")).unwrap();
        let larger = Quantity::parse(&format!("{int}.{frac}{extra}{suffix}")).unwrap();
        prop_assert!(smaller <= larger, "{int}.{frac}{suffix} > {int}.{frac}{extra}{suffix}");
        // And a digit more in front of the point makes it ten times as large, at least.
        let ten_times = Quantity::parse(&format!("{int}0.{frac}{suffix}")).unwrap();
        prop_assert!(larger <= ten_times, "{int}.{frac}{extra}{suffix} > {int}0.{frac}{suffix}");
    }
}
