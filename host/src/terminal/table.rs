//! Plain-text tables for a person at a terminal: columns padded to their
//! widest cell, numbers on the right.

/// A table: headers, then rows of cells (as many as headers).
#[derive(Debug, Default)]
pub struct Table {
    headers: Vec<&'static str>,
    /// Which columns hold numbers (aligned right).
    numeric: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Columns named by `headers`; a name ending in `#` is numeric (the
    /// `#` is not shown).
    pub fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.trim_end_matches('#')).collect(),
            numeric: headers.iter().map(|h| h.ends_with('#')).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table, a line per row after the header, two spaces between
    /// columns, no trailing spaces.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        for cells in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = w.saturating_sub(c.chars().count());
                if self.numeric[i] {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(c);
                } else {
                    line.push_str(c);
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `n` with thousands separated by commas.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A byte count in binary units (`512 B`, `1.5 MiB`).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A rate per second, short (`812k/s`, `1.2M/s`).
pub fn rate(per_sec: f64) -> String {
    match per_sec {
        r if r >= 1e6 => format!("{:.1}M/s", r / 1e6),
        r if r >= 1e4 => format!("{:.0}k/s", r / 1e3),
        r => format!("{r:.0}/s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_and_numbers_go_right() {
        let mut t = Table::new(&["NAME", "EVENTS#"]);
        t.row(vec!["in".into(), count(1234567)]);
        t.row(vec!["longer".into(), count(5)]);
        assert_eq!(
            t.render(),
            "NAME       EVENTS\nin      1,234,567\nlonger          5\n"
        );
    }

    #[test]
    fn units() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
        assert_eq!(rate(812_345.0), "812k/s");
        assert_eq!(rate(1_250_000.0), "1.2M/s");
        assert_eq!(rate(12.0), "12/s");
    }
}
