//! Unit tests through `rulebox_plugin::testing`: lines in, lines out per
//! output, as the host would deliver them.

use rulebox_plugin::testing::Harness;

use crate::RuleTemplate;

#[test]
fn a_matching_event_is_tagged_and_alerts() {
    let mut h = Harness::<RuleTemplate>::new("{}").unwrap();
    let out = h.process(&[
        r#"{"user":"ana","action":"allowed"}"#,
        r#"{"user":"bob","action":"denied"}"#,
    ]);
    assert_eq!(
        out.lines("events"),
        [
            r#"{"user":"ana","action":"allowed"}"#,
            r#"{"user":"bob","action":"denied","matched":true}"#,
        ]
    );
    let alerts = out.json("alerts");
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["value"], "denied");
    assert_eq!(alerts[0]["at_ms"], h.now_ms());
}

#[test]
fn the_field_and_value_are_configurable() {
    let mut h = Harness::<RuleTemplate>::from_toml(
        r#"
        field = "user.name"
        equals = "root"
        "#,
    )
    .unwrap();
    let out = h.process(&[r#"{"user":{"name":"root"}}"#, r#"{"user":"root"}"#]);
    assert_eq!(out.json("alerts").len(), 1);
    assert!(out.events()[0].edited && !out.events()[1].edited);
}

#[test]
fn what_is_not_an_object_passes_untouched() {
    let mut h = Harness::<RuleTemplate>::new("{}").unwrap();
    let out = h.process(&["not json", "[1]"]);
    assert_eq!(out.lines("events"), ["not json", "[1]"]);
    assert_eq!(out.events()[0].reason, "malformed");
}

#[test]
fn a_bad_configuration_is_refused() {
    assert!(Harness::<RuleTemplate>::new(r#"{"field":""}"#).is_err());
    assert!(Harness::<RuleTemplate>::new(r#"{"equals":1}"#).is_err());
}
