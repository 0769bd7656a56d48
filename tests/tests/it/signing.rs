//! Signed rules: modules signed with Debian's real `minisign` tool, run by
//! the real binary with `require_signature = true`. A tampered module, one
//! signed by another key and one without a signature are each refused
//! before they are compiled, each with its own message.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rulebox_tests::{Scratch, rule_pipeline, rule_wasm, rulebox, stderr};

/// Runs `minisign <args>` in `dir`, which must succeed. (scripts/test.sh
/// installs Debian's minisign for the e2e lane.)
fn minisign(dir: &Path, args: &[&str]) {
    let out = Command::new("minisign")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run minisign: install Debian's minisign (scripts/test.sh e2e does)");
    assert!(out.status.success(), "minisign {args:?}: {}", stderr(&out));
}

/// A key pair `<name>.pub`/`<name>.key` (no password): the public key's
/// base64 and its key id, as its `.pub` file's comment names it.
fn key_pair(dir: &Path, name: &str) -> (String, String) {
    let (public, secret) = (format!("{name}.pub"), format!("{name}.key"));
    minisign(dir, &["-G", "-W", "-p", &public, "-s", &secret]);
    let text = std::fs::read_to_string(dir.join(&public)).unwrap();
    let mut lines = text.lines();
    let id = lines
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    (lines.next().unwrap().to_string(), id)
}

/// A copy of the rule as `<name>.wasm` in `dir`.
fn module(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(format!("{name}.wasm"));
    std::fs::write(&p, bytes).unwrap();
    p
}

/// `rulebox validate` of the rule pipeline with `module` in place of the
/// rule and the given signature keys: (success, stderr).
fn validate(dir: &Scratch, module: &Path, signing: &str) -> (bool, String) {
    rulebox_with(dir, "validate", module, signing)
}

/// `rulebox <command>` (`validate`, `run`) of that pipeline, over one event.
fn rulebox_with(dir: &Scratch, command: &str, module: &Path, signing: &str) -> (bool, String) {
    let event = r#"{"src_ip":"10.0.0.5","dest_ip":"203.0.113.9","dest_port":21}"#;
    let input = dir.write("in.ndjson", format!("{event}\n"));
    let cfg = rule_pipeline(&dir.0, &input, "", signing).replace(
        &rule_wasm().display().to_string(),
        &module.display().to_string(),
    );
    let cfg = dir.write("p.toml", cfg);
    let out = rulebox(&[command, "--config", cfg.to_str().unwrap()], None);
    (out.status.success(), stderr(&out))
}

fn compiled_entries(dir: &Scratch) -> usize {
    std::fs::read_dir(dir.path("data/cache")).map_or(0, |d| d.count())
}

#[test]
fn only_a_module_signed_by_a_trusted_key_is_compiled() {
    let dir = Scratch::new("signing");
    let (trusted, _) = key_pair(&dir.0, "ours");
    let (_, other_id) = key_pair(&dir.0, "theirs");
    let rule = std::fs::read(rule_wasm()).unwrap();
    let trust = format!("require_signature = true\ntrusted_keys = [\"{trusted}\"]");

    // Missing: the module is fine, its signature absent.
    let unsigned = module(&dir.0, "unsigned", &rule);
    let (ok, missing) = validate(&dir, &unsigned, &trust);
    assert!(!ok && missing.contains("is missing"), "{missing}");

    // Another key: not valid wasm either, so only a check made before
    // the compiler can be what refuses it.
    let other = module(&dir.0, "other", b"not wasm at all");
    minisign(&dir.0, &["-S", "-s", "theirs.key", "-m", "other.wasm"]);
    let (ok, untrusted) = validate(&dir, &other, &trust);
    assert!(!ok, "{untrusted}");
    assert!(
        untrusted.contains(&format!(
            "signed by key {other_id}, which is not a trusted key"
        )),
        "{untrusted}"
    );

    // Tampered: one byte of the wasm magic changed after signing.
    let tampered = module(&dir.0, "tampered", &rule);
    minisign(&dir.0, &["-S", "-s", "ours.key", "-m", "tampered.wasm"]);
    let mut bytes = rule.clone();
    bytes[1] ^= 0x20;
    std::fs::write(&tampered, bytes).unwrap();
    let (ok, changed) = validate(&dir, &tampered, &trust);
    assert!(
        !ok && changed.contains("changed after signing"),
        "{changed}"
    );

    for e in [&missing, &untrusted, &changed] {
        assert!(e.contains("refused before it is compiled"), "{e}");
        assert!(!e.contains("not a valid WebAssembly"), "{e}");
    }
    assert_eq!(compiled_entries(&dir), 0, "nothing refused was compiled");

    // Signed (prehashed, minisign's default): it is compiled and runs.
    let signed = module(&dir.0, "signed", &rule);
    minisign(&dir.0, &["-S", "-s", "ours.key", "-m", "signed.wasm"]);
    let (ok, e) = rulebox_with(&dir, "run", &signed, &trust);
    assert!(ok, "{e}");
    assert!(e.contains("module signature verified"), "{e}");
    assert_eq!(compiled_entries(&dir), 1);
    let events = std::fs::read_to_string(dir.path("events.out")).unwrap();
    assert_eq!(events.lines().count(), 1, "{events}");
}

#[test]
fn inspect_shows_the_signatures_key_id_and_trusted_comment() {
    let dir = Scratch::new("signing-inspect");
    let (_, id) = key_pair(&dir.0, "ours");
    let signed = module(&dir.0, "signed", &std::fs::read(rule_wasm()).unwrap());
    let comment = "t1071-002 release build";
    minisign(
        &dir.0,
        &["-S", "-s", "ours.key", "-m", "signed.wasm", "-t", comment],
    );
    let out = rulebox(&["inspect", signed.to_str().unwrap()], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("(key id {id}, not verified: give the trusted key")),
        "{text}"
    );
    assert!(
        text.contains(&format!("trusted comment: {comment}")),
        "{text}"
    );
}

/// `rulebox inspect --key`: verified against the key given (base64 or a
/// `.pub` file), exit 0; another key, a changed module or no signature,
/// exit 1 with the same message `require_signature` gives.
#[test]
fn inspect_verifies_against_the_keys_given() {
    let dir = Scratch::new("signing-inspect-key");
    let (ours, id) = key_pair(&dir.0, "ours");
    let (theirs, _) = key_pair(&dir.0, "theirs");
    let rule = std::fs::read(rule_wasm()).unwrap();
    let signed = module(&dir.0, "signed", &rule);
    minisign(
        &dir.0,
        &["-S", "-s", "ours.key", "-m", "signed.wasm", "-t", "v1"],
    );
    let m = signed.to_str().unwrap();
    let inspect = |args: &[&str]| {
        let out = rulebox(&[&["inspect", m][..], args].concat(), None);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.code(), text)
    };
    let pub_file = dir.path("ours.pub");
    for key in [ours.as_str(), pub_file.to_str().unwrap()] {
        let (code, text) = inspect(&["--key", key]);
        assert_eq!(code, Some(0), "{text}");
        assert!(
            text.contains(&format!(
                "signature: verified, signed by trusted key {id}\n  trusted comment: v1"
            )),
            "{text}"
        );
    }
    let (code, text) = inspect(&["--key", &theirs]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "NOT VERIFIED: it is signed by key {id}, which is not a trusted key"
        )),
        "{text}"
    );
    let (code, json) = inspect(&["--json", "--key", &theirs]);
    assert_eq!(code, Some(1));
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["verification"]["verified"], false);
    assert_eq!(json["signature"]["verified"], false);

    // One letter of the manifest's description: still a module to inspect.
    let mut bytes = rule.clone();
    let at = bytes
        .windows(8)
        .position(|w| w == b"Transfer")
        .expect("the manifest's description");
    bytes[at] = b't';
    std::fs::write(&signed, bytes).unwrap();
    let (code, text) = inspect(&["--key", &ours]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("changed after signing"), "{text}");

    std::fs::remove_file(dir.path("signed.wasm.minisig")).unwrap();
    let (code, text) = inspect(&["--key", &ours]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("NOT VERIFIED: it is not signed"), "{text}");

    let out = rulebox(&["inspect", m, "--key", "no-such.pub"], None);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn legacy_signatures_and_key_files_are_accepted() {
    let dir = Scratch::new("signing-legacy");
    key_pair(&dir.0, "ours");
    let signed = module(&dir.0, "legacy", &std::fs::read(rule_wasm()).unwrap());
    minisign(
        &dir.0,
        &[
            "-S",
            "-l",
            "-s",
            "ours.key",
            "-m",
            "legacy.wasm",
            "-x",
            "l.sig",
        ],
    );
    let pub_file = dir.path("ours.pub");
    let trust = format!(
        "require_signature = true\ntrusted_keys = [\"{}\"]\nsignature = \"{}\"",
        pub_file.display(),
        dir.path("l.sig").display()
    );
    let (ok, e) = validate(&dir, &signed, &trust);
    assert!(ok, "{e}");
}

#[test]
fn require_signature_without_trusted_keys_is_a_configuration_error() {
    let dir = Scratch::new("signing-config");
    let (ok, e) = validate(&dir, &rule_wasm(), "require_signature = true");
    assert!(!ok, "{e}");
    assert!(
        e.contains(
            "transforms.rule.trusted_keys: require_signature = true needs at least one trusted key"
        ),
        "{e}"
    );
}
