//! The counter through `rulebox_plugin::testing`: counts, the alert at the
//! threshold, the bound on keys, and its counts across a restart.

use rulebox_plugin::testing::Harness;

use crate::Counter;

fn login(user: &str) -> String {
    format!(r#"{{"user":"{user}","action":"login"}}"#)
}

#[test]
fn the_alert_comes_once_when_a_key_reaches_the_threshold() {
    let mut h = Harness::<Counter>::new("{}").unwrap();
    let (ana, bob) = (login("ana"), login("bob"));
    let out = h.process(&[&ana, &bob, &ana]);
    assert!(out.lines("alerts").is_empty());
    let counts: Vec<_> = out
        .json("events")
        .iter()
        .map(|e| e["count"].clone())
        .collect();
    assert_eq!(counts, [1, 1, 2]);
    let out = h.process(&[&ana, &ana]);
    let alerts = out.json("alerts");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["key"], "ana");
    assert_eq!(alerts[0]["count"], 3);
    assert_eq!(alerts[0]["at_ms"], h.now_ms());
}

#[test]
fn counts_survive_a_restart_and_the_alert_still_comes_once() {
    let mut h = Harness::<Counter>::from_toml("threshold = 2").unwrap();
    let ana = login("ana");
    h.process(&[&ana]);
    assert!(h.restart().unwrap() > 0);
    let out = h.process(&[&ana, &ana]);
    assert_eq!(out.json("alerts").len(), 1);
    assert_eq!(out.json("events")[1]["count"], 3);
}

#[test]
fn a_damaged_or_foreign_snapshot_is_refused() {
    let mut h = Harness::<Counter>::new("{}").unwrap();
    h.process(&[&login("ana")]);
    let good = h.snapshot();
    assert_eq!(
        h.restore(&good[..good.len() - 1]),
        Err("the counter snapshot is cut short".into())
    );
    assert!(h.restore(b"\x07anything").is_err());
    let mut small = Harness::<Counter>::from_toml("max_keys = 1").unwrap();
    small.process(&[&login("a"), &login("b")]);
    let mut two = Harness::<Counter>::new("{}").unwrap();
    two.process(&[&login("a"), &login("b")]);
    assert!(
        small
            .restore(&two.snapshot())
            .unwrap_err()
            .contains("over max_keys")
    );
}

#[test]
fn a_nested_key_counts_and_events_without_it_pass() {
    let mut h = Harness::<Counter>::from_toml(r#"key = "src.ip""#).unwrap();
    let e = r#"{"src":{"ip":"10.0.0.5"}}"#;
    let out = h.process(&[e, r#"{"user":"ana"}"#, r#"{"src":{"ip":null}}"#, "nope"]);
    assert_eq!(
        out.events()[0].line,
        r#"{"src":{"ip":"10.0.0.5"},"count":1}"#
    );
    assert!(!out.events()[1].edited && !out.events()[2].edited);
    assert_eq!(out.events()[3].reason, "malformed");
}

#[test]
fn past_max_keys_a_new_key_is_not_counted() {
    let mut h = Harness::<Counter>::from_toml("max_keys = 2").unwrap();
    let out = h.process(&[&login("a"), &login("b"), &login("c"), &login("a")]);
    let events = out.events();
    assert!(events[1].edited && !events[2].edited && events[3].edited);
    assert_eq!(h.rule().counts.len(), 2);
}

#[test]
fn a_bad_configuration_is_refused() {
    for bad in [
        r#"{"threshold":0}"#,
        r#"{"threshold":"3"}"#,
        r#"{"key":""}"#,
        "[]",
    ] {
        assert!(Harness::<Counter>::new(bad).is_err(), "{bad}");
    }
}
