//! Calendar time both sides need: RFC 3339 (and the zone-less form Sysmon
//! writes) to Unix milliseconds and back, on the proleptic Gregorian
//! calendar. The rule reads event times with it, the host the times it
//! puts in Splunk HEC envelopes.

use alloc::vec::Vec;

/// Reads RFC 3339 (`2026-11-22T11:50:05.646455+00:00`, `...Z`) and the
/// zone-less `2020-08-06 06:27:09.362` Sysmon writes (taken as UTC).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    if b.len() < 19 {
        return None;
    }
    let num = |r: core::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        core::str::from_utf8(part).ok()?.parse().ok()
    };
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60
    {
        return None;
    }
    let mut i = 19;
    let mut ms = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 3 {
                ms += (b[i] - b'0') as i64 * [100, 10, 1][i - start];
            }
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let offset_min = match b.get(i) {
        None => 0,
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if b.len() == i + 6 && b[i + 3] == b':' => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let m = oh * 60 + om;
            if sign == b'+' { m } else { -m }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec.min(59) - offset_min * 60;
    Some(secs * 1000 + ms)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

/// Writes `ms` as `"YYYY-MM-DDThh:mm:ss.fffZ"` (with quotes).
pub fn write_rfc3339(out: &mut Vec<u8>, ms: i64) {
    let secs = ms.div_euclid(1000);
    let frac = ms.rem_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    out.push(b'"');
    push_padded(out, y, 4);
    for (sep, v, w) in [
        (b'-', m, 2),
        (b'-', d, 2),
        (b'T', sod / 3600, 2),
        (b':', sod % 3600 / 60, 2),
        (b':', sod % 60, 2),
        (b'.', frac, 3),
    ] {
        out.push(sep);
        push_padded(out, v, w);
    }
    out.extend_from_slice(b"Z\"");
}

/// `v` as decimal digits, zero-padded to `width`.
fn push_padded(out: &mut Vec<u8>, v: i64, width: usize) {
    let mut digits = [b'0'; 20];
    let (mut n, mut i) = (v.unsigned_abs(), digits.len());
    while n > 0 || i == digits.len() {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    if v < 0 {
        out.push(b'-');
    }
    for _ in (digits.len() - i)..width {
        out.push(b'0');
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::String;

    fn fmt(ms: i64) -> String {
        let mut v = Vec::new();
        write_rfc3339(&mut v, ms);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn rfc3339_round_trip() {
        for s in [
            "1970-01-01T00:00:00.000Z",
            "2026-11-22T11:50:05.646Z",
            "2000-02-29T23:59:59.999Z",
            "1969-12-31T23:59:59.999Z",
        ] {
            let ms = parse_rfc3339(s).unwrap();
            assert_eq!(fmt(ms), format!("\"{s}\""));
        }
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2026-11-22T11:50:05.646455+00:00"),
            parse_rfc3339("2026-11-22T11:50:05.646Z")
        );
        assert_eq!(parse_rfc3339("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(
            parse_rfc3339("2020-08-06 06:27:09.362"),
            parse_rfc3339("2020-08-06T06:27:09.362Z")
        );
    }

    #[test]
    fn rfc3339_rejects_nonsense() {
        for s in [
            "",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01",
            "2026-01-01T00:00:00Zjunk",
            "2026-01-01T00:00:00.",
        ] {
            assert_eq!(parse_rfc3339(s), None, "{s}");
        }
    }
}
