//! Times as logs write them, to Unix seconds: numbers (seconds, or
//! milliseconds or microseconds when that large), numeric strings, and
//! RFC 3339 / ISO 8601 text (`2026-11-27T10:00:00.123Z`, a space instead
//! of the `T`, an offset, or no zone for UTC). Used to give Splunk HEC
//! envelopes the event's own `time`.

/// Unix seconds from a number in seconds, ms or µs (by its size).
pub fn from_number(n: f64) -> Option<f64> {
    if !n.is_finite() || n <= 0.0 {
        return None;
    }
    Some(if n > 1e14 {
        n / 1e6
    } else if n > 1e11 {
        n / 1e3
    } else {
        n
    })
}

/// Unix seconds from text: a number, or an RFC 3339 / ISO 8601 time.
pub fn from_text(s: &str) -> Option<f64> {
    let s = s.trim();
    if let Ok(n) = s.parse::<f64>() {
        return from_number(n);
    }
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut frac = 0.0;
    if let Some(r) = rest.strip_prefix('.') {
        let digits = r.bytes().take_while(u8::is_ascii_digit).count();
        frac = format!("0.{}", &r[..digits]).parse().ok()?;
        rest = &r[digits..];
    }
    let offset = match rest {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let z = rest[1..].replace(':', "");
            let (oh, om) = (
                z.get(0..2)?.parse::<i64>().ok()?,
                z.get(2..4)?.parse::<i64>().ok()?,
            );
            sign * (oh * 3600 + om * 60)
        }
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset;
    from_number(secs as f64 + frac)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds as HEC's `time` wants them: a number with milliseconds.
pub fn write_seconds(out: &mut Vec<u8>, secs: f64) {
    out.extend_from_slice(format!("{secs:.3}").as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_as_logs_write_them() {
        let t = 1_764_237_600.0; // 2025-11-27T10:00:00Z
        assert_eq!(from_text("2025-11-27T10:00:00Z"), Some(t));
        assert_eq!(from_text("2025-11-27 10:00:00"), Some(t));
        assert_eq!(from_text("2025-11-27T11:30:00+01:30"), Some(t));
        assert_eq!(from_text("2025-11-27T10:00:00.250Z"), Some(t + 0.25));
        assert_eq!(from_text("1764237600"), Some(t));
        assert_eq!(from_number(1_764_237_600_000.0), Some(t));
        assert_eq!(from_number(1_764_237_600_000_000.0), Some(t));
        assert_eq!(from_text("2000-02-29T00:00:00Z"), Some(951_782_400.0));
        for bad in [
            "Nov 27 10:00:00",
            "2025-13-01T00:00:00Z",
            "",
            "-5",
            "2025-11-27T10:00:00X",
        ] {
            assert_eq!(from_text(bad), None, "{bad}");
        }
        let mut out = Vec::new();
        write_seconds(&mut out, t + 0.25);
        assert_eq!(out, b"1764237600.250");
    }
}
