//! Event time: tolerant reading (epoch seconds or milliseconds as numbers or
//! numeric strings, RFC 3339, Sysmon's `YYYY-MM-DD hh:mm:ss.fff`) and RFC 3339
//! UTC output with millisecond precision. All times are Unix milliseconds.
//! The calendar part is shared with the host (`rulebox_abi::time`).

pub use rulebox_plugin::abi::time::{parse_rfc3339, write_rfc3339};

/// How a preset's numeric time field counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    #[serde(rename = "s")]
    Seconds,
    #[serde(rename = "ms")]
    Millis,
}

/// Reads a numeric epoch (`"1664465501.645564"`, `1649721732000`) in `unit`.
pub fn parse_epoch(text: &str, unit: Unit) -> Option<i64> {
    let t = text.trim();
    let (neg, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    if t.is_empty() {
        return None;
    }
    let (int, frac) = match t.split_once('.') {
        Some((i, f)) => (i, f),
        None => (t, ""),
    };
    let plain = !int.is_empty()
        && int.bytes().all(|c| c.is_ascii_digit())
        && frac.bytes().all(|c| c.is_ascii_digit())
        && int.len() <= 15;
    let ms = if plain {
        let whole: i64 = int.parse().ok()?;
        match unit {
            Unit::Millis => whole,
            Unit::Seconds => {
                // Exact millisecond truncation of the fraction.
                let mut f = 0i64;
                for (i, c) in frac.bytes().take(3).enumerate() {
                    f += (c - b'0') as i64 * [100, 10, 1][i];
                }
                whole.checked_mul(1000)?.checked_add(f)?
            }
        }
    } else {
        // Exponents and the like.
        let v: f64 = t.parse().ok()?;
        if !v.is_finite() {
            return None;
        }
        let ms = match unit {
            Unit::Millis => v,
            Unit::Seconds => v * 1000.0,
        };
        if ms.abs() > 9.0e15 {
            return None;
        }
        ms.floor() as i64
    };
    Some(if neg { -ms } else { ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs() {
        assert_eq!(
            parse_epoch("1664465501.645564", Unit::Seconds),
            Some(1_664_465_501_645)
        );
        assert_eq!(
            parse_epoch(" 1649721732000 ", Unit::Millis),
            Some(1_649_721_732_000)
        );
        assert_eq!(parse_epoch("1.7e9", Unit::Seconds), Some(1_700_000_000_000));
        assert_eq!(parse_epoch("12", Unit::Seconds), Some(12_000));
        assert_eq!(parse_epoch("abc", Unit::Seconds), None);
        assert_eq!(parse_epoch("", Unit::Seconds), None);
        assert_eq!(parse_epoch("1e400", Unit::Seconds), None);
    }
}
