//! The generator's checks and rewrites; the generated crate is built,
//! tested, signed and run by the end-to-end tests (tests/tests/it/scaffold.rs).

use std::path::{Path, PathBuf};

use super::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A scratch folder under the system's temporary folder, removed on drop.
struct Tmp(PathBuf);

impl Tmp {
    fn new(name: &str) -> Tmp {
        let dir =
            std::env::temp_dir().join(format!("rulebox-scaffold-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Tmp(dir)
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn names_are_checked_with_a_reason() {
    for good in ["a", "my-rule", "t1071-002", "dns2"] {
        assert!(check_name(good).is_ok(), "{good}");
    }
    for (bad, why) in [
        ("", "1 to 64"),
        ("My-rule", "start with a lower-case letter"),
        ("2fa", "start with a lower-case letter"),
        ("my_rule", "only lower-case letters"),
        ("my rule", "only lower-case letters"),
        ("../x", "start with a lower-case letter"),
        ("a--b", "no '--'"),
        ("rule-", "no '--'"),
        ("test", "reserved"),
        ("rule-template", "reserved"),
    ] {
        let err = check_name(bad).unwrap_err().to_string();
        assert!(err.contains(why), "{bad}: {err}");
    }
    assert!(check_name(&"a".repeat(65)).is_err());
}

/// Every file of templates/rule (but build output) is embedded, and
/// nothing else: a file added to the template cannot be left out.
#[test]
fn every_template_file_is_embedded() {
    let root = repo().join("templates/rule");
    let mut on_disk = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(&root).unwrap().to_str().unwrap().to_string();
            if rel == "target" || rel == "data" || rel == "Cargo.lock" {
                continue;
            }
            if p.is_dir() {
                dirs.push(p);
            } else {
                on_disk.push(rel);
            }
        }
    }
    on_disk.sort();
    let mut embedded: Vec<String> = TEMPLATE.iter().map(|(p, _)| p.to_string()).collect();
    embedded.sort();
    assert_eq!(on_disk, embedded);
}

#[test]
fn the_name_replaces_the_templates_everywhere() {
    let files = render("dns-tunnel", &Sdk::InCheckout);
    for (path, text) in &files {
        assert!(!text.contains("rule-template"), "{path}");
        assert!(!text.contains("rule_template"), "{path}");
    }
    let text = |p: &str| files.iter().find(|(f, _)| *f == p).unwrap().1.clone();
    assert!(text("Cargo.toml").contains("name = \"dns-tunnel\""));
    assert!(text("Cargo.toml").contains(SDK_LINE));
    assert!(!text("Cargo.toml").contains("[workspace]"));
    assert!(files.iter().all(|(f, _)| *f != "rust-toolchain.toml"));
    assert!(text("src/lib.rs").contains("name: \"dns-tunnel\""));
    assert!(text("src/lib.rs").contains("impl Rule for DnsTunnel {"));
    assert!(text("src/tests.rs").contains("Harness::<DnsTunnel>::new"));
    assert_eq!(camel_case("t1071-002"), "T1071002");
    assert!(text("pipeline.toml").contains("\"../../target/wasm32-wasip1/wasm/dns_tunnel.wasm\""));
    assert!(
        text("tests/rules/denied_alerts.toml")
            .contains("\"../../../../target/wasm32-wasip1/wasm/dns_tunnel.wasm\"")
    );
}

#[test]
fn a_standalone_crate_is_its_own_workspace_with_the_sdk_by_path() {
    let sdk = Sdk::At(PathBuf::from("/opt/rule \"box\"/plugin/sdk"));
    let files = render("my-rule", &sdk);
    let text = |p: &str| files.iter().find(|(f, _)| *f == p).unwrap().1.clone();
    let cargo = text("Cargo.toml");
    assert!(
        cargo.contains(r#"rulebox-plugin = { path = "/opt/rule \"box\"/plugin/sdk" }"#),
        "{cargo}"
    );
    let parsed: toml::Table = toml::from_str(&cargo).unwrap();
    assert!(parsed.contains_key("workspace"));
    assert_eq!(
        parsed["profile"]["wasm"]["inherits"].as_str(),
        Some("release")
    );
    assert!(
        text("pipeline-signed.toml")
            .contains("module = \"target/wasm32-wasip1/wasm/my_rule.wasm\"")
    );
    assert!(
        text("tests/rules/denied_alerts.toml")
            .contains("module = \"../../target/wasm32-wasip1/wasm/my_rule.wasm\"")
    );
}

#[test]
fn plan_refuses_an_existing_dir_a_bad_sdk_and_a_dir_outside_a_checkout() {
    let tmp = Tmp::new("plan");
    let taken = tmp.0.join("taken");
    std::fs::create_dir(&taken).unwrap();
    let err = plan("x", Some(&taken), None).unwrap_err();
    assert!(matches!(err, ScaffoldError::Exists(_)), "{err}");
    let fresh = tmp.0.join("fresh");
    let err = plan("x", Some(&fresh), None).unwrap_err();
    assert!(err.to_string().contains("pass --sdk PATH"), "{err}");
    let err = plan("x", Some(&fresh), Some(&tmp.0)).unwrap_err();
    assert!(matches!(err, ScaffoldError::BadSdk(_)), "{err}");
    let err = plan("Bad", Some(&fresh), None).unwrap_err();
    assert!(matches!(err, ScaffoldError::BadName { .. }), "{err}");
    // The checkout itself or its plugin/sdk.
    let sdk = repo().join("plugin/sdk").canonicalize().unwrap();
    for given in [repo(), repo().join("plugin/sdk")] {
        let (dir, how) = plan("x", Some(&fresh), Some(&given)).unwrap();
        assert_eq!((dir, how), (fresh.clone(), Sdk::At(sdk.clone())));
    }
}

#[test]
fn inside_a_checkout_examples_and_plugin_need_no_sdk() {
    for kind in ["examples", "plugin"] {
        let dir = repo().join(kind).join("no-such-rule-yet");
        assert_eq!(plan("x", Some(&dir), None).unwrap(), (dir, Sdk::InCheckout));
    }
    let err = plan("x", Some(&repo().join("host/no-such-rule")), None).unwrap_err();
    assert!(matches!(err, ScaffoldError::NotInCheckout(_)), "{err}");
}

#[test]
fn write_makes_every_file_and_refuses_to_overwrite() {
    let tmp = Tmp::new("write");
    let dir = tmp.0.join("my-rule");
    let written = write("my-rule", &dir, &Sdk::At(tmp.0.clone())).unwrap();
    assert_eq!(written.len(), TEMPLATE.len() + 1, "and rust-toolchain.toml");
    assert!(dir.join("rust-toolchain.toml").is_file());
    assert!(dir.join("tests/rules/denied_alerts.toml").is_file());
    let lib = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
    assert!(lib.contains("name: \"my-rule\""));
    let err = write("my-rule", &dir, &Sdk::InCheckout).unwrap_err();
    assert!(matches!(err, ScaffoldError::Exists(_)), "{err}");
}
