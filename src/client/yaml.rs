//! YAML manifests read as kubectl reads them. kubectl turns YAML into JSON with
//! go-yaml v2, whose resolver follows YAML 1.1: an unquoted `0755` is the
//! octal number 493 (Kubernetes' documentation writes `defaultMode: 0755`),
//! `yes`, `on` and `Y` are `true`, `1_000` is 1000, `0x1F` is 31. A quoted
//! scalar stays a string. YAML 1.2 parsers (serde_yaml's) read `0755` as a
//! string and the API then refuses it, so the client resolves scalars
//! itself, from the parser's events, where quoting is still known.
//!
//! [`resolve`] is the whole YAML 1.1 decision for one scalar; [`documents`]
//! builds JSON values from the events (anchors, aliases and `<<` merges
//! included) and turns map keys into strings the way kubectl's YAML-to-JSON
//! step does (`0755: x` → `"493"`, `yes: x` → `"true"`).

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Tag};
use serde_json::{Map, Number, Value};

/// A YAML text could not be turned into JSON.
#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    /// The text is not YAML.
    #[error("{0}")]
    Syntax(#[from] ScanError),
    /// A scalar does not fit its explicit tag (`!!int abc`).
    #[error("cannot decode !!str `{value}` as a !!{tag}")]
    Tag {
        /// The scalar.
        value: String,
        /// The tag's name (`int`).
        tag: String,
    },
    /// `!!binary` that is not base64.
    #[error("!!binary value contains invalid base64 data")]
    Binary,
    /// A value JSON cannot hold (`.inf`, `.nan`).
    #[error("json: unsupported value: {0}")]
    Unsupported(&'static str),
    /// A map key JSON cannot hold (null, a map or a list).
    #[error("unsupported map key: {0}")]
    Key(String),
    /// An alias to an anchor not defined before it.
    #[error("unknown anchor referenced by an alias")]
    UnknownAnchor,
}

/// A resolved scalar, before it becomes JSON.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    /// `~`, `null`, nothing.
    Null,
    /// `true`, `yes`, `on`, `Y`, …
    Bool(bool),
    /// An integer that fits in i64.
    Int(i64),
    /// A larger positive integer.
    Uint(u64),
    /// A float (possibly not finite).
    Float(f64),
    /// Anything else, and every quoted scalar.
    Str(String),
}

/// YAML 1.1's words: go-yaml v2's resolve table.
fn word(s: &str) -> Option<Scalar> {
    Some(match s {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => Scalar::Bool(true),
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => Scalar::Bool(false),
        "" | "~" | "null" | "Null" | "NULL" => Scalar::Null,
        ".nan" | ".NaN" | ".NAN" => Scalar::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => Scalar::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Scalar::Float(f64::NEG_INFINITY),
        _ => return None,
    })
}

/// Go's `strconv.ParseUint(s, 0, 64)`: `0x`, `0o`, `0b` prefixes (either
/// case), a leading `0` for octal, else decimal; no sign.
fn go_parse_uint(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let (radix, digits) = match b.first()? {
        b'0' if b.len() >= 3 && matches!(b[1], b'b' | b'B') => (2, &s[2..]),
        b'0' if b.len() >= 3 && matches!(b[1], b'o' | b'O') => (8, &s[2..]),
        b'0' if b.len() >= 3 && matches!(b[1], b'x' | b'X') => (16, &s[2..]),
        b'0' => (8, &s[1..]),
        _ => (10, s),
    };
    if digits.is_empty() {
        return Some(0);
    }
    if !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// Go's `strconv.ParseInt(s, 0, 64)`: an optional sign, then as [`go_parse_uint`].
fn go_parse_int(s: &str) -> Option<i64> {
    let (negative, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let u = go_parse_uint(body)?;
    if negative {
        0i64.checked_sub_unsigned(u)
    } else {
        i64::try_from(u).ok()
    }
}

/// The shape go-yaml accepts as a float: `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`.
fn float_shaped(s: &str) -> bool {
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit());
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", frac)) => digits(frac),
        Some((int, frac)) => digits(int) && (frac.is_empty() || digits(frac)),
        None => digits(mantissa),
    };
    mantissa_ok && exponent.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)))
}

/// Go's `strconv.ParseFloat` for what [`float_shaped`] lets through: out of
/// range is an error there, so not a float.
fn go_parse_float(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// What an unquoted, untagged scalar means under YAML 1.1, as go-yaml v2
/// resolves it: words first, then by its first character — a digit or sign
/// may make a number (underscores dropped; integer, then unsigned, then
/// float, then `0b` binary), a `.` a float; anything else is a string.
pub fn resolve_plain(s: &str) -> Scalar {
    if let Some(w) = word(s) {
        return w;
    }
    let string = || Scalar::Str(s.to_string());
    match s.as_bytes()[0] {
        b'.' => go_parse_float(s).map_or_else(string, Scalar::Float),
        b'0'..=b'9' | b'+' | b'-' => {
            let plain = s.replace('_', "");
            if let Some(i) = go_parse_int(&plain) {
                return Scalar::Int(i);
            }
            if let Some(u) = go_parse_uint(&plain) {
                return Scalar::Uint(u);
            }
            if float_shaped(&plain) {
                if let Some(f) = go_parse_float(&plain) {
                    return Scalar::Float(f);
                }
            }
            let binary = |digits: &str| u64::from_str_radix(digits, 2).ok().filter(|_| !digits.starts_with(['+', '-']));
            if let Some(digits) = plain.strip_prefix("0b") {
                if let Some(u) = binary(digits) {
                    return i64::try_from(u).map_or(Scalar::Uint(u), Scalar::Int);
                }
            } else if let Some(digits) = plain.strip_prefix("-0b") {
                if let Some(i) = binary(digits).and_then(|u| 0i64.checked_sub_unsigned(u)) {
                    return Scalar::Int(i);
                }
            }
            string()
        }
        _ => string(),
    }
}

/// One scalar as go-yaml v2 decodes it: quoted and block scalars are strings
/// unless a core tag says otherwise; a core tag (`!!int "0755"`) resolves
/// the text and insists on its type; other tags (`!foo`) leave a string.
pub fn resolve(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Result<Scalar, YamlError> {
    let Some(tag) = tag else {
        return Ok(match style {
            ScalarStyle::Plain => resolve_plain(text),
            _ => Scalar::Str(text.to_string()),
        });
    };
    if !tag.is_yaml_core_schema() {
        return Ok(Scalar::Str(text.to_string()));
    }
    let wrong = || YamlError::Tag { value: text.to_string(), tag: tag.suffix.clone() };
    let r = resolve_plain(text);
    match (tag.suffix.as_str(), r) {
        ("int", r @ (Scalar::Int(_) | Scalar::Uint(_))) => Ok(r),
        ("float", Scalar::Int(i)) => Ok(Scalar::Float(i as f64)),
        ("float", Scalar::Uint(u)) => Ok(Scalar::Float(u as f64)),
        ("float", r @ Scalar::Float(_)) | ("bool", r @ Scalar::Bool(_)) | ("null", r @ Scalar::Null) => Ok(r),
        ("int" | "float" | "bool" | "null", _) => Err(wrong()),
        ("binary", _) => {
            use base64::Engine;
            let compact: String = text.split_whitespace().collect();
            let bytes = base64::engine::general_purpose::STANDARD.decode(compact).map_err(|_| YamlError::Binary)?;
            Ok(Scalar::Str(String::from_utf8_lossy(&bytes).into_owned()))
        }
        _ => Ok(Scalar::Str(text.to_string())),
    }
}

impl Scalar {
    /// As JSON, as kubectl sends it: Go prints a whole float without a
    /// fraction (`1.0` → `1`) and the API reads numbers beyond i64 as floats.
    /// Not-a-number and the infinities are refused, as Go's JSON refuses them.
    pub fn into_json(self) -> Result<Value, YamlError> {
        Ok(match self {
            Scalar::Null => Value::Null,
            Scalar::Bool(b) => Value::Bool(b),
            Scalar::Int(i) => Value::from(i),
            Scalar::Uint(u) => Value::from(u as f64),
            Scalar::Str(s) => Value::String(s),
            Scalar::Float(f) if f.is_nan() => return Err(YamlError::Unsupported("NaN")),
            Scalar::Float(f) if f == f64::INFINITY => return Err(YamlError::Unsupported("+Inf")),
            Scalar::Float(f) if f == f64::NEG_INFINITY => return Err(YamlError::Unsupported("-Inf")),
            // Go writes a whole float in its shortest digits (`1`, `1000000000000000000`,
            // `-9223372036854776000`); the API reads that as an integer when it fits.
            Scalar::Float(f) => match format!("{f}").parse::<i64>() {
                Ok(i) => Value::from(i),
                Err(_) => Number::from_f64(f).map_or(Value::Null, Value::Number),
            },
        })
    }
}

impl Scalar {
    /// As a JSON object key, as kubectl's YAML-to-JSON step writes non-string
    /// keys: integers in decimal, booleans as words, floats as Go's `%g` of a
    /// float32; a null key is refused.
    pub fn into_key(self) -> Result<String, YamlError> {
        Ok(match self {
            Scalar::Str(s) => s,
            Scalar::Int(i) => i.to_string(),
            Scalar::Uint(u) => u.to_string(),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Float(f) => go_float_key(f),
            Scalar::Null => return Err(YamlError::Key("null".into())),
        })
    }
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 32)`, with YAML's names for the
/// infinities: shortest digits, exponent form when the exponent is below -4
/// or at least the precision (6, or fewer for short whole numbers).
fn go_float_key(f: f64) -> String {
    if f.is_nan() {
        return ".nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { ".inf" } else { "-.inf" }.into();
    }
    let sci = format!("{:e}", f as f32);
    let (sign, sci) = match sci.strip_prefix('-') {
        Some(rest) => ("-", rest.to_string()),
        None => ("", sci),
    };
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exp: i32 = exp.parse().unwrap_or(0);
    let nd = digits.len() as i32;
    let dp = exp + 1;
    let mut eprec = 6;
    if eprec > nd && nd >= dp {
        eprec = nd;
    }
    if exp < -4 || exp >= eprec {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() { String::new() } else { format!(".{rest}") };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{frac}e{esign}{:02}", exp.abs());
    }
    let body = if dp <= 0 {
        format!("0.{}{digits}", "0".repeat((-dp) as usize))
    } else if dp >= nd {
        format!("{digits}{}", "0".repeat((dp - nd) as usize))
    } else {
        format!("{}.{}", &digits[..dp as usize], &digits[dp as usize..])
    };
    format!("{sign}{body}")
}

type Events<'a> = Parser<'a, saphyr_parser::StrInput<'a>>;

/// Builds one document's value from the parser's events.
struct Builder<'a> {
    events: Events<'a>,
    anchors: HashMap<usize, Value>,
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<Event<'a>, YamlError> {
        match self.events.next() {
            Some(Ok((ev, _))) => Ok(ev),
            Some(Err(e)) => Err(e.into()),
            None => Ok(Event::StreamEnd),
        }
    }

    fn remember(&mut self, anchor: usize, v: &Value) {
        if anchor > 0 {
            self.anchors.insert(anchor, v.clone());
        }
    }

    /// The node that starts with `ev`.
    fn node(&mut self, ev: Event<'a>) -> Result<Value, YamlError> {
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let v = resolve(&text, style, tag.as_deref())?.into_json()?;
                self.remember(anchor, &v);
                Ok(v)
            }
            Event::Alias(id) => self.anchors.get(&id).cloned().ok_or(YamlError::UnknownAnchor),
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    match self.next()? {
                        Event::SequenceEnd | Event::StreamEnd => break,
                        ev => items.push(self.node(ev)?),
                    }
                }
                let v = Value::Array(items);
                self.remember(anchor, &v);
                Ok(v)
            }
            Event::MappingStart(anchor, _) => {
                let mut map = Map::new();
                loop {
                    let key = match self.next()? {
                        Event::MappingEnd | Event::StreamEnd => break,
                        Event::Scalar(text, ScalarStyle::Plain, 0, None) if text == "<<" => None,
                        Event::Scalar(text, style, anchor, tag) => {
                            let k = resolve(&text, style, tag.as_deref())?;
                            if anchor > 0 {
                                let v = k.clone().into_json()?;
                                self.remember(anchor, &v);
                            }
                            Some(k.into_key()?)
                        }
                        ev => Some(key(self.node(ev)?)?),
                    };
                    let ev = self.next()?;
                    let value = self.node(ev)?;
                    match key {
                        Some(k) => {
                            map.insert(k, value);
                        }
                        None => merge(&mut map, value)?,
                    }
                }
                let v = Value::Object(map);
                self.remember(anchor, &v);
                Ok(v)
            }
            _ => Ok(Value::Null),
        }
    }
}

/// A map key given by an alias or a collection, as kubectl's YAML-to-JSON
/// step writes it: strings as they are, numbers and booleans in words; null,
/// lists and maps are refused.
fn key(v: Value) -> Result<String, YamlError> {
    match v {
        Value::String(s) => Ok(s),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) => go_float_key(f),
            (None, None) => n.to_string(),
        }),
        other => Err(YamlError::Key(other.to_string())),
    }
}

/// `<<: *base` or `<<: [*a, *b]`: go-yaml v2 sets the merged keys over what
/// the map has so far (later keys of the map set theirs over them); of a
/// list of maps, earlier ones win.
fn merge(into: &mut Map<String, Value>, value: Value) -> Result<(), YamlError> {
    match value {
        Value::Object(m) => into.extend(m),
        Value::Array(maps) => {
            for m in maps.into_iter().rev() {
                match m {
                    Value::Object(m) => into.extend(m),
                    other => return Err(YamlError::Key(format!("<< of {other}: map merge requires maps"))),
                }
            }
        }
        other => return Err(YamlError::Key(format!("<< of {other}: map merge requires maps"))),
    }
    Ok(())
}

/// Every document of a YAML text as JSON (an empty document is `null`); an
/// error carries the number (from 1) of the document it is in.
pub fn documents(text: &str) -> Result<Vec<Value>, (usize, YamlError)> {
    let mut b = Builder { events: Parser::new_from_str(text), anchors: HashMap::new() };
    let mut docs = Vec::new();
    loop {
        let index = docs.len() + 1;
        match b.next() {
            Err(e) => return Err((index, e)),
            Ok(Event::StreamEnd) => return Ok(docs),
            Ok(Event::DocumentStart(_)) => {
                b.anchors.clear();
                let ev = b.next().map_err(|e| (index, e))?;
                let v = b.node(ev).map_err(|e| (index, e))?;
                docs.push(v);
            }
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// One value in a block map, decoded.
    fn value(yaml_scalar: &str) -> Result<Value, YamlError> {
        let doc = documents(&format!("v: {yaml_scalar}\n")).map_err(|(_, e)| e)?;
        Ok(doc[0]["v"].clone())
    }

    /// What kubectl 1.32 (`kubectl annotate --local -o json`) made of each
    /// scalar, checked on this machine.
    #[test]
    fn scalars_decode_as_kubectl_decodes_them() {
        let cases: &[(&str, Value)] = &[
            // Octal, YAML 1.1 style and Go's 0o; hex; binary; underscores.
            ("0755", json!(493)),
            ("0644", json!(420)),
            ("07_55", json!(493)),
            ("0o17", json!(15)),
            ("-0o17", json!(-15)),
            ("0x1F", json!(31)),
            ("0x1_F", json!(31)),
            ("-0x1F", json!(-31)),
            ("0b101", json!(5)),
            ("0b1_0", json!(2)),
            ("1_000", json!(1000)),
            ("1__0", json!(10)),
            ("+12", json!(12)),
            ("0", json!(0)),
            ("-0", json!(0)),
            ("00", json!(0)),
            ("0_7", json!(7)),
            // Not octal, so a float, printed whole.
            ("08", json!(8)),
            // Floats; whole ones lose their fraction, as Go prints them.
            ("1.0", json!(1)),
            ("-1.0", json!(-1)),
            ("1.", json!(1)),
            ("0.", json!(0)),
            ("-0.0", json!(0)),
            ("1.5", json!(1.5)),
            ("0.1", json!(0.1)),
            (".5", json!(0.5)),
            ("+.5", json!(0.5)),
            ("-.5", json!(-0.5)),
            (".5e3", json!(500)),
            ("1e5", json!(100000)),
            ("1E5", json!(100000)),
            ("1e+5", json!(100000)),
            ("1e-5", json!(0.00001)),
            ("3.0e2", json!(300)),
            ("1.5e+3", json!(1500)),
            ("1_000.5", json!(1000.5)),
            ("1_0.5", json!(10.5)),
            ("0e0", json!(0)),
            ("6.02e23", json!(6.02e23)),
            ("1e21", json!(1e21)),
            ("1e18", json!(1_000_000_000_000_000_000i64)),
            ("9223372036854775808", json!(9.223372036854776e18)),
            ("-9223372036854775809", json!(-9.223372036854776e18)),
            ("18446744073709551615", json!(1.8446744073709552e19)),
            ("0xFFFFFFFFFFFFFFFF", json!(1.8446744073709552e19)),
            // YAML 1.1 booleans and nulls, in the three spellings only.
            ("yes", json!(true)),
            ("Yes", json!(true)),
            ("YES", json!(true)),
            ("y", json!(true)),
            ("Y", json!(true)),
            ("on", json!(true)),
            ("ON", json!(true)),
            ("True", json!(true)),
            ("TRUE", json!(true)),
            ("no", json!(false)),
            ("N", json!(false)),
            ("n", json!(false)),
            ("Off", json!(false)),
            ("FALSE", json!(false)),
            ("~", json!(null)),
            ("null", json!(null)),
            ("Null", json!(null)),
            ("NULL", json!(null)),
            ("", json!(null)),
            // Strings: other spellings, not-quite numbers, dates, quoted, blocks, tags.
            ("yES", json!("yES")),
            ("tRUE", json!("tRUE")),
            ("oN", json!("oN")),
            ("nULL", json!("nULL")),
            ("0b2", json!("0b2")),
            ("0x", json!("0x")),
            ("0o", json!("0o")),
            ("12:30", json!("12:30")),
            ("_1", json!("_1")),
            ("123abc", json!("123abc")),
            ("1e400", json!("1e400")),
            ("+", json!("+")),
            ("\"-\"", json!("-")),
            (".", json!(".")),
            ("2006-01-02", json!("2006-01-02")),
            ("2006-01-02T15:04:05Z", json!("2006-01-02T15:04:05Z")),
            ("\"0755\"", json!("0755")),
            ("'0755'", json!("0755")),
            ("\"yes\"", json!("yes")),
            ("'1'", json!("1")),
            ("\"\"", json!("")),
            ("|\n  0755\n", json!("0755\n")),
            (">\n  folded\n  0755\n", json!("folded 0755\n")),
            ("multi\n  line 0755", json!("multi line 0755")),
            ("!!str 0755", json!("0755")),
            ("!custom 0755", json!("0755")),
            ("!!int \"0755\"", json!(493)),
            ("!!float \"1\"", json!(1)),
            ("!!bool \"yes\"", json!(true)),
            ("!!binary aGVsbG8=", json!("hello")),
        ];
        for (yaml, want) in cases {
            match value(yaml) {
                Ok(got) => assert_eq!(&got, want, "{yaml:?}"),
                Err(e) => panic!("{yaml:?}: {e}"),
            }
        }
    }

    #[test]
    fn values_json_cannot_hold_are_refused_as_kubectl_refuses_them() {
        let cases = [
            (".inf", "json: unsupported value: +Inf"),
            ("-.Inf", "json: unsupported value: -Inf"),
            (".NaN", "json: unsupported value: NaN"),
            ("!!int abc", "cannot decode !!str `abc` as a !!int"),
            ("!!binary '*'", "!!binary value contains invalid base64 data"),
        ];
        for (yaml, want) in cases {
            assert_eq!(value(yaml).unwrap_err().to_string(), want, "{yaml}");
        }
    }

    #[test]
    fn map_keys_become_strings_as_kubectl_writes_them() {
        let doc =
            documents("yes: a\n0755: b\n1.5: c\n1.0: d\n3.10: e\n1e6: f\n\"0755\": g\n'yes': h\nplain: i\n").unwrap();
        assert_eq!(
            doc[0],
            json!({"true": "a", "493": "b", "1.5": "c", "1": "d", "3.1": "e", "1e+06": "f", "0755": "g", "yes": "h", "plain": "i"})
        );
        assert!(documents("~: x\n").is_err());
        assert!(documents("? [a]\n: x\n").is_err());
    }

    #[test]
    fn go_g_format_of_float32_keys() {
        let cases = [
            (1.5, "1.5"),
            (100000.0, "100000"),
            (1e6, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5, "-2.5"),
            (0.0, "0"),
            (f64::INFINITY, ".inf"),
            (f64::NEG_INFINITY, "-.inf"),
        ];
        for (f, want) in cases {
            assert_eq!(go_float_key(f), want, "{f}");
        }
    }

    #[test]
    fn anchors_aliases_merges_and_duplicates_follow_go_yaml_v2() {
        let text = "labels: &base\n  a: \"1\"\n  b: \"2\"\nannotations:\n  b: explicit-before\n  <<: *base\n  c: \"3\"\nboth:\n  <<: [*base, {a: other, d: \"4\"}]\ncopy: *base\ndup: first\ndup: second\n\"<<\": not-a-merge\n";
        let doc = &documents(text).unwrap()[0];
        assert_eq!(doc["annotations"], json!({"a": "1", "b": "2", "c": "3"}));
        assert_eq!(doc["both"], json!({"a": "1", "b": "2", "d": "4"}));
        assert_eq!(doc["copy"], doc["labels"]);
        assert_eq!(doc["dup"], "second");
        assert_eq!(doc["<<"], "not-a-merge");
    }

    #[test]
    fn documents_are_counted_for_errors() {
        let docs = documents("a: 1\n---\n---\n# only a comment\n---\nb: 2\n").unwrap();
        assert_eq!(docs, vec![json!({"a": 1}), json!(null), json!(null), json!({"b": 2})]);
        let (index, _) = documents("a: 1\n---\nb: [\n").unwrap_err();
        assert_eq!(index, 2);
        assert_eq!(documents("").unwrap(), Vec::<Value>::new());
    }

    #[test]
    fn go_integer_parsing() {
        let cases: &[(&str, Option<i64>)] = &[
            ("0755", Some(493)),
            ("0X1f", Some(31)),
            ("0B11", Some(3)),
            ("0O17", Some(15)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("+-1", None),
            ("0+1", None),
            ("0x+1", None),
            ("", None),
            ("-", None),
            ("089", None),
        ];
        for (s, want) in cases {
            assert_eq!(go_parse_int(s), *want, "{s:?}");
        }
        assert!(float_shaped("1.") && float_shaped(".5") && float_shaped("1e5") && float_shaped("-1.5E-3"));
        assert!(!float_shaped(".") && !float_shaped("1e") && !float_shaped("e5") && !float_shaped("1.5.2"));
    }
}
