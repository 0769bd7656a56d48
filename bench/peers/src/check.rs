//! The equality check a peer passes before it is timed: the same lines in
//! the same order, each with the same `t1071` label (or none) as in
//! `rulebox run`'s output, and, for a peer that aggregates, the same
//! alerts (as JSON values, in any order).

use serde_json::Value;

/// The `t1071` member of each line (`None` for a line without one, or not
/// a JSON object).
fn labels(output: &[u8]) -> Vec<Option<Value>> {
    output
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_slice::<Value>(l)
                .ok()
                .and_then(|mut v| v.get_mut("t1071").map(Value::take))
        })
        .collect()
}

/// Compares the labels of `peer` with those of `reference`; the error says
/// where they first differ.
pub fn same_labels(reference: &[u8], peer: &[u8]) -> Result<usize, String> {
    let (a, b) = (labels(reference), labels(peer));
    if a.len() != b.len() {
        return Err(format!("{} lines against rulebox's {}", b.len(), a.len()));
    }
    if let Some(i) = (0..a.len()).find(|&i| a[i] != b[i]) {
        return Err(format!(
            "line {}: label {:?}, rulebox's {:?}",
            i + 1,
            b[i],
            a[i]
        ));
    }
    Ok(a.iter().filter(|l| l.is_some()).count())
}

/// Each alert line as a canonical JSON text (members sorted), sorted.
fn alerts(output: &[u8]) -> Result<Vec<String>, String> {
    let mut v = output
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_slice::<Value>(l)
                .map(|v| v.to_string())
                .map_err(|e| format!("an alert is not JSON: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    v.sort_unstable();
    Ok(v)
}

/// Compares two sets of alerts; the error names one that differs.
pub fn same_alerts(reference: &[u8], peer: &[u8]) -> Result<usize, String> {
    let (a, b) = (alerts(reference)?, alerts(peer)?);
    if let Some(x) = a.iter().find(|x| b.binary_search(x).is_err()) {
        return Err(format!(
            "{} alerts against rulebox's {}; missing: {x}",
            b.len(),
            a.len()
        ));
    }
    if let Some(x) = b.iter().find(|x| a.binary_search(x).is_err()) {
        return Err(format!("an alert rulebox did not write: {x}"));
    }
    if a.len() != b.len() {
        return Err(format!("{} alerts against rulebox's {}", b.len(), a.len()));
    }
    Ok(a.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_compare_as_values_and_catch_a_difference() {
        let r = b"{\"a\":1,\"t1071\":{\"external\":true,\"counted\":false}}\nnot json\n";
        let same = b"{\"t1071\":{\"counted\":false,\"external\":true},\"a\":1}\nnot json\n";
        assert_eq!(same_labels(r, same), Ok(1));
        let other = b"{\"a\":1,\"t1071\":{\"external\":true,\"counted\":true}}\nnot json\n";
        assert!(same_labels(r, other).unwrap_err().starts_with("line 1"));
        assert!(same_labels(r, b"{}\n").is_err());
    }

    #[test]
    fn alerts_compare_in_any_order() {
        let r = b"{\"id\":1,\"n\":4}\n{\"id\":2,\"n\":5}\n";
        assert_eq!(
            same_alerts(r, b"{\"n\":5,\"id\":2}\n{\"id\":1,\"n\":4}\n"),
            Ok(2)
        );
        assert!(same_alerts(r, b"{\"id\":1,\"n\":4}\n").is_err());
        assert!(same_alerts(r, b"{\"id\":1,\"n\":4}\n{\"id\":2,\"n\":6}\n").is_err());
    }
}
