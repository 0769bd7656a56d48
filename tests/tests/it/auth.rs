//! Authenticated listeners and secrets kept out of configuration files:
//! the `http` source's bearer tokens (refusals answered 401, counted in the
//! summary and `/metrics`), a HEC sink and source whose tokens come from a
//! file and from the environment, and no secret in any log line or error
//! (the logs are read at `debug`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use rulebox_tests::{
    Running, Scratch, counter_on, free_port, http, rulebox_bin, stderr, wait_for, wait_listening,
};

const FILE_TOKEN: &str = "tok-from-a-file-6d1f0c";
const ENV_TOKEN: &str = "tok-from-the-env-93be27";
const WRONG_TOKEN: &str = "not-a-token-5a77e1";

/// `rulebox run` in the background with `env` set and logs at debug.
fn spawn_with_env(cfg: &Path, log: &Path, env: &[(&str, &str)]) -> Running {
    let log = std::fs::File::create(log).unwrap();
    let child = Command::new(rulebox_bin())
        .args(["run", "--config", cfg.to_str().unwrap()])
        .envs(env.iter().copied())
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Running(child)
}

fn assert_no_secret(text: &str) {
    for s in [FILE_TOKEN, ENV_TOKEN, WRONG_TOKEN] {
        assert!(!text.contains(s), "a secret in the output:\n{text}");
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[test]
fn an_http_source_with_tokens_refuses_the_others_and_counts_them() {
    let dir = Scratch::new("auth-http");
    dir.write("http.token", format!("{FILE_TOKEN}\n"));
    let (port, api) = (free_port(), free_port());
    let d = dir.0.display();
    let cfg = format!(
        "data_dir = \"{d}/data\"\n[api]\naddress = \"127.0.0.1:{api}\"\n[sources.in]\ntype = \"http\"\naddress = \"127.0.0.1:{port}\"\npath = \"/logs\"\ntokens = [{{ file = \"http.token\" }}, {{ env = \"RB_TEST_HTTP_TOKEN\" }}]\n[sinks.out]\ntype = \"file\"\npath = \"{d}/out.ndjson\"\ninputs = [\"in\"]\n"
    );
    let cfg = dir.write("rulebox.toml", cfg);
    let log = dir.path("run.log");
    let run = spawn_with_env(&cfg, &log, &[("RB_TEST_HTTP_TOKEN", ENV_TOKEN)]);
    wait_listening(port);
    let post = |auth: Option<String>, n: u32| {
        let h = auth.map(|a| ("Authorization", a));
        let headers: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        http(
            port,
            "POST",
            "/logs",
            &headers,
            format!("{{\"n\":{n}}}\n").as_bytes(),
        )
        .0
    };
    assert_eq!(post(None, 1), 401, "no token");
    assert_eq!(post(Some(bearer(WRONG_TOKEN)), 2), 401, "a wrong token");
    assert_eq!(
        post(Some(format!("Basic {FILE_TOKEN}")), 3),
        401,
        "not a bearer token"
    );
    assert_eq!(post(Some(bearer(FILE_TOKEN)), 4), 200, "the file's token");
    assert_eq!(
        post(Some(bearer(ENV_TOKEN)), 5),
        200,
        "the environment's token"
    );
    // RFC 6750's challenge, seen by a real client.
    let out = Command::new("curl")
        .args(["-s", "-m", "10", "-D", "-", "-o", "/dev/null"])
        .args(["-d", "{}", &format!("http://127.0.0.1:{port}/logs")])
        .output()
        .unwrap();
    let headers = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(headers.contains("www-authenticate: bearer"), "{headers}");

    let (status, metrics) = http(api, "GET", "/metrics", &[], b"");
    assert_eq!(status, 200);
    let refused = metrics
        .lines()
        .find(|l| l.starts_with("rulebox_source_refused_total") && l.contains("unauthorized"))
        .unwrap_or_default()
        .to_string();
    assert!(refused.ends_with(" 4"), "{refused}");
    run.stop();
    let out = std::fs::read_to_string(dir.path("out.ndjson")).unwrap();
    assert_eq!(out, "{\"n\":4}\n{\"n\":5}\n", "only the authorised events");
    let log = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        counter_on(&log, "source done", "refused_unauthorized"),
        Some(4),
        "{log}"
    );
    assert!(log.contains("request refused: unauthorized"), "{log}");
    assert_no_secret(&log);
}

#[test]
fn hec_tokens_come_from_a_file_and_the_environment_and_are_never_printed() {
    let dir = Scratch::new("auth-hec");
    let d = dir.0.display();
    let port = free_port();
    let back = format!(
        "data_dir = \"{d}/data-back\"\n[sources.hec]\ntype = \"splunk_hec\"\naddress = \"127.0.0.1:{port}\"\ntokens = [{{ env = \"RB_TEST_HEC_TOKEN\" }}]\n[sinks.out]\ntype = \"file\"\npath = \"{d}/out.ndjson\"\ninputs = [\"hec\"]\n"
    );
    let back_log = dir.path("back.log");
    let back = dir.write("back.toml", back);
    let receiver = spawn_with_env(&back, &back_log, &[("RB_TEST_HEC_TOKEN", ENV_TOKEN)]);
    wait_listening(port);
    let events: String = (0..20).map(|i| format!("{{\"n\":{i}}}\n")).collect();
    dir.write("in.ndjson", events);
    // The sender's token from a file holding the receiver's token; then
    // one holding a wrong token.
    let front = |name: &str, token: &str| {
        dir.write(&format!("{name}.token"), format!("{token}\n"));
        let cfg = format!(
            "data_dir = \"{d}/data-{name}\"\n[sources.in]\ntype = \"file\"\npath = \"{d}/in.ndjson\"\n[sinks.hec]\ntype = \"splunk_hec\"\nendpoint = \"http://127.0.0.1:{port}\"\ntoken = {{ file = \"{name}.token\" }}\ninputs = [\"in\"]\nretry = {{ initial_ms = 100, max_ms = 200, limit_secs = 1 }}\n"
        );
        let cfg = dir.write(&format!("{name}.toml"), cfg);
        Command::new(rulebox_bin())
            .args(["run", "--config", cfg.to_str().unwrap()])
            .env("RUST_LOG", "debug")
            .output()
            .unwrap()
    };
    let good = front("good", ENV_TOKEN);
    assert!(good.status.success(), "{}", stderr(&good));
    let lines = || {
        std::fs::read_to_string(dir.path("out.ndjson"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    wait_for("delivered", Duration::from_secs(20), || lines() == 20);
    // A malformed body with the right token: refused whole, counted.
    let auth = format!("Splunk {ENV_TOKEN}");
    let headers = [("Authorization", auth.as_str())];
    let body = b"{\"event\":{\"n\":99}} {not json";
    let (status, _) = http(port, "POST", "/services/collector/event", &headers, body);
    assert_eq!(status, 400);
    let bad = front("bad", WRONG_TOKEN);
    assert_eq!(bad.status.code(), Some(1), "a refused token is an error");
    let bad_log = stderr(&bad);
    assert!(bad_log.contains("403"), "{bad_log}");
    receiver.stop();
    assert_eq!(
        lines(),
        20,
        "nothing of the wrong token's (or the malformed body) got in"
    );
    let back_text = std::fs::read_to_string(&back_log).unwrap();
    let refused = |what| counter_on(&back_text, "source done", what);
    assert_eq!(refused("refused_malformed"), Some(1), "{back_text}");
    assert!(
        refused("refused_unauthorized").is_some_and(|n| n >= 1),
        "{back_text}"
    );
    for log in [
        stderr(&good),
        bad_log,
        std::fs::read_to_string(&back_log).unwrap(),
    ] {
        assert_no_secret(&log);
    }

    // validate names where a secret is missing, not what the others hold.
    let out = Command::new(rulebox_bin())
        .args(["validate", "--config", back.to_str().unwrap()])
        .env_remove("RB_TEST_HEC_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("RB_TEST_HEC_TOKEN is not set"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_file(dir.path("good.token")).unwrap();
    let out = Command::new(rulebox_bin())
        .args([
            "validate",
            "--config",
            dir.path("good.toml").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("good.token"), "{}", stderr(&out));
    assert_no_secret(&stderr(&out));
}
