//! Kubernetes resource quantities (`500m`, `2`, `64Mi`, `1G`, `1e3`).
//!
//! Admission must refuse what the Kubernetes API server refuses (`12 potatoes`,
//! `1KiB`, `1kk`) and compare a request with its limit exactly (`1` equals
//! `1000m`), so the parser follows Kubernetes' grammar strictly and keeps the value
//! as an integer number of nano-units rather than a float. The scheduler and the
//! kubelet read the same values as millicores and whole units.
//!
//! The grammar, as Kubernetes writes it:
//!
//! ```text
//! quantity        ::= signedNumber suffix
//! signedNumber    ::= number | sign number
//! number          ::= digits | digits "." digits | digits "." | "." digits
//! suffix          ::= binarySI | decimalExponent | decimalSI
//! binarySI        ::= Ki | Mi | Gi | Ti | Pi | Ei
//! decimalSI       ::= n | u | m | "" | k | M | G | T | P | E
//! decimalExponent ::= "e" signedNumber | "E" signedNumber    (an integer)
//! ```

use std::str::FromStr;

/// Why a quantity does not parse, in the API server's words. The caller names
/// the field and the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Characters outside the grammar (`12 potatoes`, `1KiB`, ``).
    #[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]
    Format,
    /// Suffix characters of the grammar in a combination that means nothing (`1kk`, `1K`, `1e`).
    #[error("unable to parse quantity's suffix")]
    Suffix,
    /// A number without digits (`.`, `+.m`).
    #[error("unable to parse numeric part of quantity")]
    Numeric,
    /// A negative quantity where only non-negative ones make sense (CPU, memory).
    #[error("must be greater than or equal to 0")]
    Negative,
}

/// A parsed quantity: an exact number of nano-units (10⁻⁹ of a core, byte or pod),
/// rounded away from zero below that, as Kubernetes rounds. Values beyond about
/// 1.7 × 10²⁹ units saturate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity {
    nanos: i128,
}

/// Significant digits kept from the number; later digits only round up.
const MAX_DIGITS: usize = 36;

impl Quantity {
    /// Parse `s` strictly (no surrounding whitespace).
    pub fn parse(s: &str) -> Result<Self, QuantityError> {
        let bytes = s.as_bytes();
        let mut pos = 0;
        let negative = match bytes.first() {
            Some(b'-') => {
                pos += 1;
                true
            }
            Some(b'+') => {
                pos += 1;
                false
            }
            Some(_) => false,
            None => return Err(QuantityError::Format),
        };
        let int_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        let int_digits = &s[int_start..pos];
        let mut frac_digits = "";
        let mut dot = false;
        if bytes.get(pos) == Some(&b'.') {
            dot = true;
            pos += 1;
            let frac_start = pos;
            while pos < bytes.len() && bytes[pos].is_ascii_digit() {
                pos += 1;
            }
            frac_digits = &s[frac_start..pos];
        }
        if int_digits.is_empty() && frac_digits.is_empty() {
            // The regular expression needs one digit or dot; a lone dot has no number.
            return Err(if dot { QuantityError::Numeric } else { QuantityError::Format });
        }
        let suffix = &s[pos..];
        check_suffix_shape(suffix)?;
        let (exp10, exp2) = interpret_suffix(suffix)?;

        // value = mantissa × 10^(exp10 + 9 - fraction digits) × 2^exp2 nano-units.
        let mut mantissa: i128 = 0;
        let mut significant = 0;
        let mut scale: i64 = i64::from(exp10) + 9;
        let mut dropped_nonzero = false;
        for (i, d) in int_digits.bytes().chain(frac_digits.bytes()).enumerate() {
            let in_fraction = i >= int_digits.len();
            let d = i128::from(d - b'0');
            if significant < MAX_DIGITS {
                mantissa = mantissa * 10 + d;
                if mantissa != 0 {
                    significant += 1;
                }
                if in_fraction {
                    scale -= 1;
                }
            } else {
                dropped_nonzero |= d != 0;
                if !in_fraction {
                    scale += 1;
                }
            }
        }
        if dropped_nonzero {
            mantissa += 1;
        }
        // Double for the binary suffix, dividing first whenever a doubling
        // would overflow while divisions are still due: a value too large
        // only before its division must not saturate (it overflowed, and
        // `20000000000000.0000000000000Ti` panicked).
        let mut value = mantissa;
        let mut divisions = if scale < 0 { scale.unsigned_abs() } else { 0 };
        for _ in 0..exp2 {
            while value > i128::MAX / 2 && divisions > 0 {
                value = div_ceil(value, 10);
                divisions -= 1;
            }
            value = value.saturating_mul(2);
        }
        if scale >= 0 {
            for _ in 0..scale {
                if value == 0 || value == i128::MAX {
                    break;
                }
                value = value.saturating_mul(10);
            }
        } else {
            // ceil(ceil(x / a) / b) == ceil(x / ab): divide step by step, rounding up.
            for _ in 0..divisions {
                if value <= 1 {
                    break;
                }
                value = div_ceil(value, 10);
            }
        }
        Ok(Quantity { nanos: if negative { -value } else { value } })
    }

    /// Whether the quantity is below zero.
    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    /// The value in thousandths (millicores for CPU), rounded up.
    pub fn millis(&self) -> i128 {
        div_ceil(self.nanos, 1_000_000)
    }

    /// The value in whole units (bytes for memory), rounded up.
    pub fn units(&self) -> i128 {
        div_ceil(self.nanos, 1_000_000_000)
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

fn div_ceil(n: i128, d: i128) -> i128 {
    let q = n / d;
    if n % d > 0 {
        q + 1
    } else {
        q
    }
}

/// The suffix is characters of `eEinumkKMGTP`, then an optional sign and digits.
fn check_suffix_shape(suffix: &str) -> Result<(), QuantityError> {
    let rest = suffix.trim_start_matches(|c: char| "eEinumkKMGTP".contains(c));
    let rest = rest.strip_prefix(['+', '-']).unwrap_or(rest);
    if rest.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(QuantityError::Format)
    }
}

/// A well-shaped suffix as (power of ten, power of two).
fn interpret_suffix(suffix: &str) -> Result<(i32, u32), QuantityError> {
    Ok(match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        e if e.len() > 1 && e.starts_with(['e', 'E']) => {
            let exp = &e[1..];
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(QuantityError::Suffix);
            }
            (exp.parse::<i32>().map_err(|_| QuantityError::Suffix)?, 0)
        }
        _ => return Err(QuantityError::Suffix),
    })
}

fn non_negative(s: &str) -> Result<Quantity, QuantityError> {
    let q = Quantity::parse(s.trim())?;
    if q.is_negative() {
        return Err(QuantityError::Negative);
    }
    Ok(q)
}

/// CPU in millicores (`"250m"` → 250, `"1.5"` → 1500), rounded up like Kubernetes.
/// Surrounding whitespace is ignored; negative values are refused.
pub fn cpu_millis(s: &str) -> Result<u64, QuantityError> {
    Ok(u64::try_from(non_negative(s)?.millis()).unwrap_or(u64::MAX))
}

/// A whole-unit quantity such as memory in bytes (`"64Mi"` → 67108864), rounded up.
/// Surrounding whitespace is ignored; negative values are refused.
pub fn units(s: &str) -> Result<u64, QuantityError> {
    Ok(u64::try_from(non_negative(s)?.units()).unwrap_or(u64::MAX))
}

/// A quantity from JSON: Kubernetes accepts strings and bare numbers.
pub fn from_json(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Format bytes the way `kubectl top` does (`12Mi`).
pub fn format_bytes_mi(bytes: u64) -> String {
    format!("{}Mi", bytes / (1024 * 1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu() {
        assert_eq!(cpu_millis("500m").unwrap(), 500);
        assert_eq!(cpu_millis("2").unwrap(), 2000);
        assert_eq!(cpu_millis("0.1").unwrap(), 100);
        assert_eq!(cpu_millis("1500u").unwrap(), 2);
        assert!(cpu_millis("one").is_err());
    }

    #[test]
    fn memory() {
        assert_eq!(units("64Mi").unwrap(), 64 << 20);
        assert_eq!(units("1G").unwrap(), 1_000_000_000);
        assert_eq!(units("1e3").unwrap(), 1000);
        assert_eq!(units("128974848").unwrap(), 128974848);
        assert_eq!(units("110").unwrap(), 110);
        assert!(units("12Q").is_err());
        assert_eq!(units("-1"), Err(QuantityError::Negative));
        assert_eq!(units(" 1Ki "), Ok(1024), "the scheduler's and kubelet's readers trim");
    }

    /// Each text with its value in nano-units, or the API server's reason to refuse it.
    #[test]
    fn grammar() {
        use QuantityError::*;
        const G: i128 = 1_000_000_000;
        let cases: &[(&str, Result<i128, QuantityError>)] = &[
            ("0", Ok(0)),
            ("2", Ok(2 * G)),
            ("+2", Ok(2 * G)),
            ("-2", Ok(-2 * G)),
            ("500m", Ok(G / 2)),
            ("1.5", Ok(3 * G / 2)),
            ("1.", Ok(G)),
            (".5", Ok(G / 2)),
            ("0.1", Ok(G / 10)),
            ("100n", Ok(100)),
            ("1500u", Ok(1_500_000)),
            ("1k", Ok(1000 * G)),
            ("1M", Ok(1_000_000 * G)),
            ("1E", Ok(1_000_000_000_000_000_000 * G)),
            ("64Mi", Ok((64 << 20) * G)),
            ("1.5Gi", Ok((3 << 29) * G)),
            ("100Ti", Ok((100i128 << 40) * G)),
            ("1e3", Ok(1000 * G)),
            ("1E3", Ok(1000 * G)),
            ("1e+3", Ok(1000 * G)),
            ("25e-1", Ok(5 * G / 2)),
            ("0.1n", Ok(1)),
            ("1e-20", Ok(1)),
            ("12 potatoes", Err(Format)),
            ("12Q", Err(Format)),
            ("1KiB", Err(Format)),
            ("1.2.3", Err(Format)),
            ("", Err(Format)),
            (" 1", Err(Format)),
            ("1 ", Err(Format)),
            ("-", Err(Format)),
            ("Mi", Err(Format)),
            ("1e3.5", Err(Format)),
            (".", Err(Numeric)),
            ("1kk", Err(Suffix)),
            ("1K", Err(Suffix)),
            ("1e", Err(Suffix)),
            ("1mi", Err(Suffix)),
            ("1e99999999999", Err(Suffix)),
        ];
        for (text, want) in cases {
            let got = Quantity::parse(text).map(|q| q.nanos);
            assert_eq!(&got, want, "{text:?}");
        }
    }

    #[test]
    fn equal_values_compare_equal_whatever_the_spelling() {
        let q = |s: &str| Quantity::parse(s).unwrap();
        assert_eq!(q("1"), q("1000m"));
        assert_eq!(q("1Ki"), q("1024"));
        assert_eq!(q("1k"), q("1e3"));
        assert!(q("1001m") > q("1"));
        assert!(q("999999999n") < q("1"));
        assert_eq!(q("1.5").millis(), 1500);
        assert_eq!(q("1n").millis(), 1, "rounded up");
        assert_eq!(q("1m").units(), 1, "rounded up");
    }

    /// Found by fuzzing: a binary suffix that overflowed before the fraction's
    /// division panicked ("attempt to add with overflow"; wrapped to a negative
    /// quantity in a release build), and such values compared below smaller ones.
    #[test]
    fn a_huge_binary_quantity_with_a_long_fraction_parses_without_overflow() {
        let q = Quantity::parse("20000000000000.0000000000000Ti").unwrap();
        assert_eq!(q.units(), 20_000_000_000_000 << 40);
        let smaller = Quantity::parse("10000000000.0000000000000000000Gi").unwrap();
        let larger = Quantity::parse("10000000000.00000000000000000001Gi").unwrap();
        assert!(smaller <= larger);
        assert_eq!(units("99999999999999999999.99999999999999999Ei"), Ok(u64::MAX));
    }

    #[test]
    fn huge_values_saturate_instead_of_overflowing() {
        let q = Quantity::parse("99999999999999999999999999999999999999999999Ei").unwrap();
        assert_eq!(q.nanos, i128::MAX);
        assert_eq!(units("1e400"), Ok(u64::MAX));
        let many_digits = format!("1.{}1", "0".repeat(60));
        assert_eq!(Quantity::parse(&many_digits).unwrap().nanos, 1_000_000_001, "rounded up at the nano");
    }
}
