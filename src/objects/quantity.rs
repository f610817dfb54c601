//! Kubernetes resource quantities (`500m`, `2`, `64Mi`, `1G`, `1e3`) as integers:
//! CPU in millicores, everything else in whole units (bytes, pods).

/// A quantity that does not parse, with the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': \"{0}\"")]
pub struct QuantityError(pub String);

fn split(s: &str) -> (&str, &str) {
    let idx = s.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-')).unwrap_or(s.len());
    s.split_at(idx)
}

/// The quantity as a float number of base units.
fn parse(s: &str) -> Result<f64, QuantityError> {
    let s = s.trim();
    let bad = || QuantityError(s.to_string());
    let (num, suffix) = split(s);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let mult = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e if e.starts_with(['e', 'E']) => 10f64.powi(e[1..].parse::<i32>().map_err(|_| bad())?),
        _ => return Err(bad()),
    };
    if n < 0.0 {
        return Err(bad());
    }
    Ok(n * mult)
}

/// CPU in millicores (`"250m"` → 250, `"1.5"` → 1500), rounded up like Kubernetes.
pub fn cpu_millis(s: &str) -> Result<u64, QuantityError> {
    Ok((parse(s)? * 1000.0).ceil() as u64)
}

/// A whole-unit quantity such as memory in bytes (`"64Mi"` → 67108864), rounded up.
pub fn units(s: &str) -> Result<u64, QuantityError> {
    Ok(parse(s)?.ceil() as u64)
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
        assert!(units("-1").is_err());
    }
}
