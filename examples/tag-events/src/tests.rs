//! The rule through `rulebox_plugin::testing`: lines in, lines out.

use rulebox_plugin::testing::Harness;

use crate::TagEvents;

#[test]
fn every_object_gets_the_default_tag() {
    let mut h = Harness::<TagEvents>::new("{}").unwrap();
    let out = h.process(&[r#"{"user":"ana"}"#, "{}"]);
    assert_eq!(
        out.lines("events"),
        [r#"{"user":"ana","tag":true}"#, r#"{"tag":true}"#]
    );
}

#[test]
fn a_configured_field_is_set_or_replaced_and_the_rest_kept() {
    let mut h = Harness::<TagEvents>::from_toml(
        r#"
        field = "env"
        value = { name = "prod", tier = 1 }
        "#,
    )
    .unwrap();
    let out = h.process(&[r#"{"env":"dev", "n" : 1}"#]);
    assert_eq!(
        out.lines("events"),
        [r#"{"env":{"name":"prod","tier":1}, "n" : 1}"#]
    );
}

#[test]
fn what_is_not_an_object_passes_untouched_and_is_counted() {
    let mut h = Harness::<TagEvents>::new("{}").unwrap();
    let out = h.process(&["[1,2]", "{\"a\":", r#"{"ok":1}"#]);
    assert_eq!(
        out.lines("events"),
        ["[1,2]", "{\"a\":", r#"{"ok":1,"tag":true}"#]
    );
    let reasons: Vec<_> = out.events().iter().map(|e| e.reason).collect();
    assert_eq!(reasons, ["not_object", "malformed", "ok"]);
}

#[test]
fn a_bad_configuration_is_refused_with_the_key() {
    let err = Harness::<TagEvents>::new(r#"{"field":7}"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the rule refused its configuration: field: expected a string"
    );
    assert!(Harness::<TagEvents>::new(r#"{"field":""}"#).is_err());
}
