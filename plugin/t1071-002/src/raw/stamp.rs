//! Times as raw formats write them, to Unix milliseconds. A time without a
//! zone is taken as UTC (devices log in their own zone, which the line
//! does not say; set the device to UTC). A time that names no year
//! (`Nov 21 09:00:00`, RFC 3164's syslog header) cannot be placed and reads
//! as missing: the rule then counts the connection at its clock (spec §3).
//!
//! Read: a number (epoch seconds, or milliseconds, microseconds or
//! nanoseconds, told apart by size), RFC 3339 and `2025-11-21 09:00:00`,
//! `2025/11/21 09:00:00` (PAN-OS), `Nov 21 2025 09:00:00[.123][ zone]`
//! (Cisco ASA, CEF, LEEF's default `devTime` form).

use crate::time::parse_rfc3339;

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// Reads one time value.
pub fn parse(text: &str) -> Option<i64> {
    let t = text.trim();
    if t.bytes().next().is_some_and(|c| c.is_ascii_digit()) {
        if let Some(ms) = epoch(t) {
            return Some(ms);
        }
        if t.len() >= 19 && t.as_bytes()[4] == b'/' {
            return parse_rfc3339(&t.replacen('/', "-", 2));
        }
        return parse_rfc3339(t);
    }
    let words: Vec<&str> = t.split_whitespace().collect();
    month_day_year(&words)
}

/// An epoch number, its unit told by its size (seconds up to 10^11,
/// milliseconds up to 10^14, microseconds up to 10^17, else nanoseconds).
fn epoch(t: &str) -> Option<i64> {
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if int.is_empty()
        || int.len() > 19
        || !int.bytes().all(|c| c.is_ascii_digit())
        || !frac.bytes().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let n: i64 = int.parse().ok()?;
    Some(match n {
        0..100_000_000_000 => {
            let mut ms = 0i64;
            for (i, c) in frac.bytes().take(3).enumerate() {
                ms += i64::from(c - b'0') * [100, 10, 1][i];
            }
            n * 1000 + ms
        }
        100_000_000_000..100_000_000_000_000 => n,
        100_000_000_000_000..100_000_000_000_000_000 => n / 1000,
        _ => n / 1_000_000,
    })
}

/// `Nov 21 2025 09:00:00[.123]` with an optional zone word after it
/// (`UTC`, `GMT`, `Z`, or `+01:00`; other zone names are taken as UTC).
fn month_day_year(w: &[&str]) -> Option<i64> {
    let [mon, day, year, clock, rest @ ..] = w else {
        return None;
    };
    let m = month(mon)?;
    let d: u32 = day.parse().ok()?;
    let y: u32 = year.parse().ok().filter(|_| year.len() == 4)?;
    let clock = clock.trim_end_matches(':');
    let zone = match rest.first() {
        Some(z) if z.starts_with(['+', '-']) && z.len() == 6 => *z,
        _ => "Z",
    };
    parse_rfc3339(&format!("{y:04}-{m:02}-{d:02}T{clock}{zone}"))
}

fn month(word: &str) -> Option<u32> {
    let w = word.get(..3)?;
    MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(w))
        .map(|i| i as u32 + 1)
}

/// The time in a syslog header (the text before a message): an RFC 3339
/// word, or `Nov 21 2025 09:00:00` (Cisco ASA's `logging timestamp`
/// format). `None` when the header has no year.
pub fn in_header(header: &str) -> Option<i64> {
    let words: Vec<&str> = header.split_whitespace().collect();
    for (i, w) in words.iter().enumerate() {
        let w = match (w.starts_with('<'), w.find('>')) {
            (true, Some(n)) => &w[n + 1..], // the priority, `<166>`
            _ => w,
        };
        if w.len() >= 19 && w.as_bytes().get(10) == Some(&b'T') {
            if let Some(t) = parse_rfc3339(w.trim_end_matches(':')) {
                return Some(t);
            }
        } else if month(w).is_some() && w.len() == 3 {
            let mut rest: Vec<&str> = vec![w];
            rest.extend_from_slice(&words[i + 1..]);
            return month_day_year(&rest);
        }
    }
    None
}

/// Reads `text` by a Java `SimpleDateFormat` pattern (LEEF's
/// `devTimeFormat`): `yyyy`, `MM`, `MMM`, `dd`, `HH`, `mm`, `ss`, `SSS`,
/// a zone (`Z`, `X`, `XXX`: `+0100`, `+01:00`, `Z`; `z`: a zone name,
/// taken as UTC unless it is an offset), quoted literals; other pattern
/// characters must match themselves. Falls back to [`parse`].
pub fn with_pattern(text: &str, pattern: &str) -> Option<i64> {
    by_pattern(text, pattern).or_else(|| parse(text))
}

fn by_pattern(text: &str, pattern: &str) -> Option<i64> {
    let mut f = Fields::default();
    let (p, t) = (pattern.as_bytes(), text.trim().as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < p.len() {
        let c = p[i];
        let run = p[i..].iter().take_while(|&&x| x == c).count();
        if c == b'\'' {
            let end = p[i + 1..].iter().position(|&x| x == b'\'')? + i + 1;
            let lit = &p[i + 1..end];
            (t.get(j..j + lit.len()) == Some(lit)).then_some(())?;
            j += lit.len();
            i = end + 1;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            (t.get(j) == Some(&c)).then_some(())?;
            j += 1;
            i += 1;
            continue;
        }
        j = f.take(c, run, t, j)?;
        i += run;
    }
    (j == t.len()).then_some(())?;
    f.build()
}

#[derive(Default)]
struct Fields {
    y: u32,
    mo: u32,
    d: u32,
    h: u32,
    mi: u32,
    s: u32,
    ms: u32,
    zone: String,
}

impl Fields {
    /// Takes pattern letter `c` (`run` of it) from `t` at `j`.
    fn take(&mut self, c: u8, run: usize, t: &[u8], j: usize) -> Option<usize> {
        let digits = |n: usize| -> Option<(u32, usize)> {
            let d = t.get(j..j + n)?;
            d.iter().all(u8::is_ascii_digit).then_some(())?;
            Some((std::str::from_utf8(d).ok()?.parse().ok()?, j + n))
        };
        let (v, next) = match c {
            b'M' if run >= 3 => {
                let w = std::str::from_utf8(t.get(j..j + 3)?).ok()?;
                (month(w)?, j + 3)
            }
            b'Z' | b'X' | b'z' => {
                let end = t[j..]
                    .iter()
                    .position(|&b| b == b' ')
                    .map_or(t.len(), |n| j + n);
                self.zone = zone(std::str::from_utf8(&t[j..end]).ok()?);
                return Some(end);
            }
            _ => digits(run)?,
        };
        match c {
            b'y' => self.y = v,
            b'M' => self.mo = v,
            b'd' => self.d = v,
            b'H' => self.h = v,
            b'm' => self.mi = v,
            b's' => self.s = v,
            b'S' => self.ms = v,
            _ => return None,
        }
        Some(next)
    }

    fn build(&self) -> Option<i64> {
        let zone = if self.zone.is_empty() {
            "Z"
        } else {
            &self.zone
        };
        let text = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}{zone}",
            self.y, self.mo, self.d, self.h, self.mi, self.s, self.ms
        );
        parse_rfc3339(&text)
    }
}

/// A zone as RFC 3339 writes it: `+0100` and `+01` become `+01:00`; a
/// name (`UTC`, `CET`) is taken as UTC.
pub fn zone(z: &str) -> String {
    let b = z.as_bytes();
    match b {
        [s @ (b'+' | b'-'), h1, h2, b':', m1, m2] | [s @ (b'+' | b'-'), h1, h2, m1, m2] => {
            format!(
                "{}{}{}:{}{}",
                *s as char, *h1 as char, *h2 as char, *m1 as char, *m2 as char
            )
        }
        [s @ (b'+' | b'-'), h1, h2] => format!("{}{}{}:00", *s as char, *h1 as char, *h2 as char),
        _ => "Z".to_string(),
    }
}

/// Where a record's time is: read ([`When::resolve`]) only for a record
/// that may count, since most records are on ports the rule does not
/// watch and reading a time is a good part of reading a line.
#[derive(Debug, Clone, Default)]
pub enum When<'a> {
    #[default]
    Unknown,
    /// A value in the forms [`parse`] reads.
    Text(std::borrow::Cow<'a, str>),
    /// A syslog header ([`in_header`]).
    Header(&'a str),
    /// A value and its Java date pattern ([`with_pattern`]).
    Pattern(&'a str, &'a str),
    /// A date, a time of day and perhaps a zone (FortiGate's `date`, `time`,
    /// `tz`).
    DateTime(&'a str, &'a str, Option<&'a str>),
}

impl When<'_> {
    pub fn resolve(&self) -> Option<i64> {
        match self {
            When::Unknown => None,
            When::Text(t) => parse(t),
            When::Header(h) => in_header(h),
            When::Pattern(t, p) => with_pattern(t, p),
            When::DateTime(d, t, tz) => {
                let zone = tz.map_or_else(|| "Z".to_string(), zone);
                parse(&format!("{d}T{t}{zone}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_763_715_600_000; // 2025-11-21T09:00:00Z

    #[test]
    fn the_forms_devices_write() {
        assert_eq!(parse("1763715600"), Some(T));
        assert_eq!(parse("1763715600.250"), Some(T + 250));
        assert_eq!(parse("1763715600000"), Some(T));
        assert_eq!(
            parse("1763715600000000000"),
            Some(T),
            "FortiGate eventtime, ns"
        );
        assert_eq!(parse("2025-11-21T09:00:00Z"), Some(T));
        assert_eq!(parse("2025-11-21 09:00:00"), Some(T));
        assert_eq!(parse("2025/11/21 09:00:00"), Some(T));
        assert_eq!(parse("Nov 21 2025 09:00:00"), Some(T));
        assert_eq!(parse("Nov 21 2025 09:00:00.500 UTC"), Some(T + 500));
        assert_eq!(parse("Nov 21 2025 10:00:00 +01:00"), Some(T));
        assert_eq!(parse("Nov 21 09:00:00"), None, "no year");
        assert_eq!(parse("XXXXXXXXXX.XXXXXX"), None);
    }

    #[test]
    fn java_patterns() {
        let iso = "yyyy-MM-dd'T'HH:mm:ss.SSSZ";
        assert_eq!(
            with_pattern("2025-11-21T10:00:00.250+0100", iso),
            Some(T + 250)
        );
        assert_eq!(
            with_pattern("21/Nov/2025:09:00:00 UTC", "dd/MMM/yyyy:HH:mm:ss z"),
            Some(T)
        );
        assert_eq!(
            with_pattern("1763715600000", "not this"),
            Some(T),
            "falls back"
        );
    }

    #[test]
    fn syslog_headers() {
        assert_eq!(in_header("<166>Nov 21 2025 09:00:00 fw01 : "), Some(T));
        assert_eq!(in_header("Nov 21 2025 09:00:00: "), Some(T));
        assert_eq!(
            in_header("<166>1 2025-11-21T09:00:00Z fw01 - - - "),
            Some(T)
        );
        assert_eq!(in_header("<166>Nov 21 09:00:00 fw01 "), None);
        assert_eq!(in_header(""), None);
    }
}
