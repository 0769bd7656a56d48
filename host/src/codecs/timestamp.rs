//! Times as logs write them, to Unix seconds: numbers (seconds, or
//! milliseconds or microseconds when that large), numeric strings, and
//! RFC 3339 text (`2026-11-27T10:00:00.123Z`, a space instead of the `T`,
//! an offset, or no zone for UTC). Used to give Splunk HEC envelopes the
//! event's own `time`.

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

/// Unix seconds from text: a number, or an RFC 3339 time (or the
/// zone-less `YYYY-MM-DD hh:mm:ss` form, taken as UTC), read with the
/// calendar the rule uses (`rulebox_abi::time`).
pub fn from_text(s: &str) -> Option<f64> {
    let s = s.trim();
    if let Ok(n) = s.parse::<f64>() {
        return from_number(n);
    }
    let ms = rulebox_abi::time::parse_rfc3339(s)?;
    from_number(ms as f64 / 1000.0)
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
