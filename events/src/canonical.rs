//! Canonical JSON as specified by RFC 8785 (JSON Canonicalization Scheme).
//!
//! Hashes and signatures are computed over this form so that two implementations that hold
//! the same JSON data produce the same bytes, whatever key order or number spelling they
//! received it in.

use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

/// Integers beyond this magnitude cannot be represented exactly as IEEE 754 doubles, which is
/// the only number model RFC 8785 knows; they are refused instead of being silently rounded.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CanonicalError {
    #[error("number {0} cannot be represented exactly as an IEEE 754 double")]
    UnsafeInteger(String),
    #[error("NaN and infinite numbers have no JSON form")]
    NonFiniteNumber,
    #[error("value cannot be converted to JSON: {0}")]
    NotJson(String),
}

/// Canonical JSON text of any serialisable value.
pub fn to_canonical_string<T: Serialize + ?Sized>(value: &T) -> Result<String, CanonicalError> {
    let value = serde_json::to_value(value).map_err(|e| CanonicalError::NotJson(e.to_string()))?;
    canonicalize(&value)
}

/// Canonical JSON text of a parsed JSON value.
pub fn canonicalize(value: &Value) -> Result<String, CanonicalError> {
    let mut out = String::with_capacity(256);
    write_value(value, &mut out)?;
    Ok(out)
}

fn write_value(value: &Value, out: &mut String) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(n, out)?,
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            // RFC 8785 3.2.3: members sorted by the UTF-16 code units of their names.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_value(item, out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

fn write_number(n: &serde_json::Number, out: &mut String) -> Result<(), CanonicalError> {
    let as_double = if let Some(u) = n.as_u64() {
        if u > MAX_SAFE_INTEGER + 1 {
            return Err(CanonicalError::UnsafeInteger(u.to_string()));
        }
        u as f64
    } else if let Some(i) = n.as_i64() {
        if i.unsigned_abs() > MAX_SAFE_INTEGER + 1 {
            return Err(CanonicalError::UnsafeInteger(i.to_string()));
        }
        i as f64
    } else {
        n.as_f64().ok_or(CanonicalError::NonFiniteNumber)?
    };
    out.push_str(&format_double(as_double)?);
    Ok(())
}

/// ECMAScript `Number.prototype.toString` of a finite double, as RFC 8785 3.2.2.3 requires.
pub fn format_double(value: f64) -> Result<String, CanonicalError> {
    if !value.is_finite() {
        return Err(CanonicalError::NonFiniteNumber);
    }
    if value == 0.0 {
        // Minus zero serialises as "0".
        return Ok("0".to_owned());
    }
    let mut buffer = ryu_js::Buffer::new();
    Ok(buffer.format_finite(value).to_owned())
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{0C}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(text: &str) -> String {
        let value: Value = serde_json::from_str(text).expect("test input is JSON");
        canonicalize(&value).expect("canonicalizable")
    }

    /// RFC 8785 section 3.2.2, the example of the whole scheme.
    #[test]
    fn rfc8785_main_example() {
        let input = r#"{
          "numbers": [333333333.33333329, 1E30, 4.50,
                      2e-3, 0.000000000000000000000000001],
          "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
          "literals": [null, true, false]
        }"#;
        let expected = "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],\"string\":\"\u{20ac}$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}";
        assert_eq!(canon(input), expected);
    }

    /// RFC 8785 section 3.2.3, sorting by UTF-16 code units.
    #[test]
    fn rfc8785_sorting_example() {
        let input = r#"{
          "\u20ac": "Euro Sign",
          "\r": "Carriage Return",
          "\ufb33": "Hebrew Letter Dalet With Dagesh",
          "1": "One",
          "\ud83d\ude00": "Emoji: Grinning Face",
          "\u0080": "Control",
          "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#;
        let value: Value = serde_json::from_str(&canon(input)).expect("output is JSON");
        let text = canon(input);
        let order: Vec<&str> = [
            "\r",
            "1",
            "\u{0080}",
            "\u{00f6}",
            "\u{20ac}",
            "\u{1f600}",
            "\u{fb33}",
        ]
        .to_vec();
        let mut positions = Vec::new();
        for key in &order {
            let quoted = serde_json::to_string(key).expect("string");
            let quoted = if *key == "\r" {
                "\"\\r\"".to_owned()
            } else {
                quoted
            };
            positions.push(text.find(&quoted).expect("key present"));
        }
        let mut sorted = positions.clone();
        sorted.sort_unstable();
        assert_eq!(positions, sorted, "keys out of RFC 8785 order in {text}");
        assert_eq!(value.as_object().map(|m| m.len()), Some(7));
    }

    /// RFC 8785 appendix B: IEEE 754 bit patterns and their required serialisations.
    #[test]
    fn rfc8785_number_examples() {
        let cases: [(u64, &str); 24] = [
            (0x0000000000000000, "0"),
            (0x8000000000000000, "0"),
            (0x0000000000000001, "5e-324"),
            (0x8000000000000001, "-5e-324"),
            (0x7fefffffffffffff, "1.7976931348623157e+308"),
            (0xffefffffffffffff, "-1.7976931348623157e+308"),
            (0x4340000000000000, "9007199254740992"),
            (0xc340000000000000, "-9007199254740992"),
            (0x4430000000000000, "295147905179352830000"),
            (0x44b52d02c7e14af5, "9.999999999999997e+22"),
            (0x44b52d02c7e14af6, "1e+23"),
            (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
            (0x444b1ae4d6e2ef4e, "999999999999999700000"),
            (0x444b1ae4d6e2ef4f, "999999999999999900000"),
            (0x444b1ae4d6e2ef50, "1e+21"),
            (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
            (0x3eb0c6f7a0b5ed8d, "0.000001"),
            (0x41b3de4355555553, "333333333.3333332"),
            (0x41b3de4355555554, "333333333.33333325"),
            (0x41b3de4355555555, "333333333.3333333"),
            (0x41b3de4355555556, "333333333.3333334"),
            (0x41b3de4355555557, "333333333.33333343"),
            (0xbecbf647612f3696, "-0.0000033333333333333333"),
            (0x43143ff3c1cb0959, "1424953923781206.2"),
        ];
        for (bits, expected) in cases {
            assert_eq!(
                format_double(f64::from_bits(bits)).expect("finite"),
                expected,
                "bits {bits:#018x}"
            );
        }
        assert_eq!(
            format_double(f64::from_bits(0x7fffffffffffffff)),
            Err(CanonicalError::NonFiniteNumber)
        );
        assert_eq!(
            format_double(f64::from_bits(0x7ff0000000000000)),
            Err(CanonicalError::NonFiniteNumber)
        );
    }

    #[test]
    fn integers_beyond_double_precision_are_refused() {
        let value = serde_json::json!({ "n": 9_007_199_254_740_993u64 });
        assert!(matches!(
            canonicalize(&value),
            Err(CanonicalError::UnsafeInteger(_))
        ));
        assert_eq!(canon(r#"{"n": 42, "m": -7}"#), r#"{"m":-7,"n":42}"#);
    }

    #[test]
    fn key_order_and_whitespace_do_not_change_the_result() {
        assert_eq!(
            canon(r#"{ "b" : [1, {"y":2,"x":1}], "a": "z" }"#),
            canon(r#"{"a":"z","b":[1,{"x":1,"y":2}]}"#)
        );
    }
}
