//! The path plan through `rulebox_plugin::testing`, which builds the
//! objects index as the host does: groups, slots, and the unknown output.

use rulebox_plugin::testing::Harness;

use crate::FlowTag;

#[test]
fn each_shape_is_read_through_its_group() {
    let mut h = Harness::<FlowTag>::new("{}").unwrap();
    let out = h.process(&[
        r#"{"src_ip":"10.0.0.5","dest_ip":"203.0.113.9","dest_port":445}"#,
        r#"{"source":{"ip":"10.0.0.6"},"destination":{"ip":"198.51.100.7","port":21}}"#,
    ]);
    let events = out.json("events");
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["flow"]["shape"], "flat");
    assert_eq!(events[0]["flow"]["src"], "10.0.0.5");
    assert_eq!(events[0]["flow"]["dest"], "203.0.113.9");
    assert_eq!(events[0]["flow"]["port"], "445");
    assert_eq!(events[1]["flow"]["shape"], "nested");
    assert_eq!(events[1]["flow"]["dest"], "198.51.100.7");
    assert_eq!(events[1]["flow"]["port"], "21");
}

#[test]
fn the_first_group_whose_source_is_present_applies() {
    let mut h = Harness::<FlowTag>::new("{}").unwrap();
    // Both shapes' sources: the flat group comes first.
    let both = r#"{"source":{"ip":"10.0.0.6"},"src_ip":"10.0.0.5","dest_ip":"192.0.2.1"}"#;
    let out = h.process(&[both]);
    let flow = &out.json("events")[0]["flow"];
    assert_eq!(flow["shape"], "flat");
    assert_eq!(flow["src"], "10.0.0.5");
    assert!(flow.get("port").is_none(), "{flow}");
}

#[test]
fn events_of_no_known_shape_go_to_unknown_untouched() {
    let mut h = Harness::<FlowTag>::new("{}").unwrap();
    let none = r#"{"msg":"hello"}"#;
    let half = r#"{"src_ip":"10.0.0.5"}"#;
    let out = h.process(&[none, half]);
    assert_eq!(out.lines("unknown"), [none, half]);
    assert!(out.lines("events").is_empty());
}

#[test]
fn the_paths_are_configurable() {
    let mut h =
        Harness::<FlowTag>::from_toml(r#"flat = ["client", "server", "server_port"]"#).unwrap();
    let out = h.process(&[r#"{"client":"10.0.0.1","server":"10.0.0.2","server_port":"22"}"#]);
    assert_eq!(out.json("events")[0]["flow"]["port"], "22");
    assert!(Harness::<FlowTag>::from_toml(r#"flat = ["a", "b"]"#).is_err());
    assert!(Harness::<FlowTag>::from_toml(r#"nested = ["a", "", "c"]"#).is_err());
}
