//! Durations as people write them on a command line: `30s`, `90m`, `720h`,
//! `365d`, or parts added up (`1h30m`). One syntax for every flag that takes
//! a time span, so that tests can say seconds where operators say days.

use std::time::Duration;

/// A duration that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing was given.
    #[error("empty duration: give a number and a unit, e.g. 30s, 720h or 365d")]
    Empty,
    /// A number without a unit, or a unit without a number.
    #[error("\"{0}\" is not a duration: give a number and a unit (s, m, h, d), e.g. 30s, 720h or 365d")]
    Malformed(String),
    /// A unit other than s, m, h, d.
    #[error("\"{unit}\" in \"{text}\" is not a unit: use s, m, h or d")]
    Unit {
        /// The whole text.
        text: String,
        /// The unit found.
        unit: String,
    },
    /// Too long to represent.
    #[error("\"{0}\" is too long")]
    Overflow(String),
}

/// Parse `text` as one or more `<number><unit>` parts (units `s`, `m`, `h`,
/// `d`), added up.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let malformed = || DurationError::Malformed(text.to_string());
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(malformed());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| DurationError::Overflow(text.to_string()))?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        if unit_len == 0 {
            return Err(malformed());
        }
        let unit = &rest[..unit_len];
        let scale = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(DurationError::Unit { text: text.to_string(), unit: unit.to_string() }),
        };
        rest = &rest[unit_len..];
        total = n
            .checked_mul(scale)
            .and_then(|part| total.checked_add(part))
            .ok_or_else(|| DurationError::Overflow(text.to_string()))?;
    }
    Ok(Duration::from_secs(total))
}

/// `d` in the same syntax, largest units first (`1d2h`, `30s`, `0s`), whole seconds.
pub fn format(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, scale) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= scale {
            out.push_str(&format!("{}{unit}", secs / scale));
            secs %= scale;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_from_their_parts() {
        let s = Duration::from_secs;
        let cases: &[(&str, Result<Duration, DurationError>)] = &[
            ("30s", Ok(s(30))),
            ("5m", Ok(s(300))),
            ("720h", Ok(s(720 * 3600))),
            ("365d", Ok(s(365 * 86_400))),
            ("1h30m", Ok(s(5400))),
            ("1d1s", Ok(s(86_401))),
            (" 20s ", Ok(s(20))),
            ("0s", Ok(s(0))),
            ("", Err(DurationError::Empty)),
            ("30", Err(DurationError::Malformed("30".into()))),
            ("s", Err(DurationError::Malformed("s".into()))),
            ("1h-5m", Err(DurationError::Unit { text: "1h-5m".into(), unit: "h-".into() })),
            ("3w", Err(DurationError::Unit { text: "3w".into(), unit: "w".into() })),
            ("10 s", Err(DurationError::Unit { text: "10 s".into(), unit: " s".into() })),
            ("99999999999999999999s", Err(DurationError::Overflow("99999999999999999999s".into()))),
            ("999999999999999999d", Err(DurationError::Overflow("999999999999999999d".into()))),
        ];
        for (text, want) in cases {
            assert_eq!(&parse(text), want, "{text:?}");
        }
    }

    #[test]
    fn durations_format_in_the_syntax_they_parse_from() {
        for (secs, text) in [(0, "0s"), (20, "20s"), (90, "1m30s"), (86_400 * 365, "365d"), (93_784, "1d2h3m4s")] {
            assert_eq!(format(Duration::from_secs(secs)), text);
            assert_eq!(parse(text), Ok(Duration::from_secs(secs)));
        }
    }
}
