//! Listeners under abuse, through the real binary on loopback: clients
//! that stall mid-body or send small gzip bodies that inflate to a lot
//! must not starve clients that behave, nor grow memory past the budget.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use rulebox_tests::{Scratch, free_port, http, spawn_run, terminate, wait_listening};

/// A HEC source into a null sink, with these extra source keys.
fn hec_pipeline(dir: &Scratch, port: u16, extra: &str) -> std::path::PathBuf {
    let cfg = format!(
        "data_dir = \"{data}\"\n[sources.hec]\ntype = \"splunk_hec\"\naddress = \"127.0.0.1:{port}\"\ntokens = [\"t\"]\n{extra}\n[sinks.out]\ntype = \"file\"\npath = \"{out}\"\ninputs = [\"hec\"]\n",
        data = dir.path("data").display(),
        out = dir.path("out.ndjson").display(),
    );
    dir.write("p.toml", cfg)
}

/// Headers declaring a body of `declared` bytes, then `sent` bytes of it.
fn stall(port: u16, declared: usize, sent: usize) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let head = format!(
        "POST /services/collector/event HTTP/1.1\r\nHost: x\r\nAuthorization: Splunk t\r\nContent-Length: {declared}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&vec![b' '; sent]).unwrap();
    s
}

fn status_of(mut s: TcpStream) -> u16 {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Four requests that declare the largest body and stall after 1 KiB hold
/// 1 KiB each, not the whole budget: a client that behaves is answered at
/// once; the stalled ones get 408 once `body_timeout_secs` is over.
#[test]
fn stalled_bodies_do_not_hold_the_budget_and_time_out() {
    let dir = Scratch::new("listen-stall");
    let port = free_port();
    let cfg = hec_pipeline(&dir, port, "body_timeout_secs = 3");
    let mut child = spawn_run(&cfg, &dir.path("rulebox.log"));
    wait_listening(port);
    let stalled: Vec<_> = (0..4).map(|_| stall(port, 16 << 20, 1024)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    let (status, _) = http(
        port,
        "POST",
        "/services/collector/event",
        &[("Authorization", "Splunk t")],
        br#"{"event":{"good":1}}"#,
    );
    assert_eq!(status, 200);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    let started = Instant::now();
    for s in stalled {
        assert_eq!(status_of(s), 408);
    }
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    terminate(&mut child.0);
    let out = std::fs::read_to_string(dir.path("out.ndjson")).unwrap();
    assert_eq!(out, "{\"good\":1}\n");
}

/// Many small gzip bodies that each inflate to 8 MiB of events: each is
/// counted for what it becomes, so the ones that find no room in time get
/// 503 (the client keeps them), and memory stays near the 64 MiB budget.
#[test]
fn gzip_bodies_count_what_they_inflate_to() {
    let dir = Scratch::new("listen-gzip");
    let port = free_port();
    let cfg = hec_pipeline(&dir, port, "ack_timeout_secs = 2");
    let mut child = spawn_run(&cfg, &dir.path("rulebox.log"));
    wait_listening(port);
    let line = format!("{{\"event\":{{\"pad\":\"{}\"}}}}\n", "x".repeat(1000));
    let events = (8 << 20) / line.len();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    for _ in 0..events {
        gz.write_all(line.as_bytes()).unwrap();
    }
    let body = gz.finish().unwrap();
    assert!(body.len() < 100_000, "{}", body.len());
    let clients: Vec<_> = (0..24)
        .map(|_| {
            let body = body.clone();
            std::thread::spawn(move || {
                http(
                    port,
                    "POST",
                    "/services/collector/event",
                    &[("Authorization", "Splunk t"), ("Content-Encoding", "gzip")],
                    &body,
                )
                .0
            })
        })
        .collect();
    let answers: Vec<u16> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    assert!(
        answers.iter().all(|s| *s == 200 || *s == 503),
        "{answers:?}"
    );
    let accepted = answers.iter().filter(|s| **s == 200).count();
    assert!(accepted >= 1, "{answers:?}");
    terminate(&mut child.0);
    let log = std::fs::read_to_string(dir.path("rulebox.log")).unwrap();
    let out = std::fs::read(dir.path("out.ndjson")).unwrap();
    let lines = out.iter().filter(|&&b| b == b'\n').count();
    assert_eq!(
        lines,
        accepted * events,
        "every accepted body, whole; {answers:?}"
    );
    let rss = rulebox_tests::strip_ansi(log.lines().find(|l| l.contains("peak_rss_kib")).unwrap());
    let kib: u64 = rss
        .split("peak_rss_kib=")
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    eprintln!("gzip bodies: {accepted} of 24 accepted, peak RSS {kib} KiB");
    // 24 bodies inflating to 8 MiB (and their events as much again) would
    // be ~400 MiB held at once; the budget keeps it to 64 MiB plus the
    // process itself.
    assert!(kib < 200 * 1024, "peak RSS {kib} KiB:\n{log}");
}

/// 1,024 connections (every slot) each send half a line and stall: they
/// are closed once `line_timeout_secs` is over (their halves passed on),
/// so a client that behaves gets its lines through within seconds.
#[test]
fn trickling_connections_cannot_hold_every_slot() {
    let dir = Scratch::new("listen-trickle");
    let port = free_port();
    let cfg = format!(
        "data_dir = \"{data}\"\n[sources.tcp]\ntype = \"tcp\"\naddress = \"127.0.0.1:{port}\"\nline_timeout_secs = 2\n[sinks.out]\ntype = \"file\"\npath = \"{out}\"\ninputs = [\"tcp\"]\n",
        data = dir.path("data").display(),
        out = dir.path("out.ndjson").display(),
    );
    let cfg = dir.write("p.toml", cfg);
    let mut child = spawn_run(&cfg, &dir.path("rulebox.log"));
    wait_listening(port);
    let held: Vec<TcpStream> = (0..1024)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(b"{\"half\":").unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let start = Instant::now();
    let mut good = TcpStream::connect(("127.0.0.1", port)).unwrap();
    good.write_all(b"{\"good\":1}\n{\"good\":2}\n").unwrap();
    drop(good);
    let out = dir.path("out.ndjson");
    rulebox_tests::wait_for("the good lines", Duration::from_secs(15), || {
        std::fs::read_to_string(&out).is_ok_and(|t| t.contains("{\"good\":2}"))
    });
    let took = start.elapsed();
    assert!(took < Duration::from_secs(6), "{took:?}");
    drop(held);
    terminate(&mut child.0);
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        text.lines().filter(|l| l.starts_with("{\"good\"")).count(),
        2
    );
    assert_eq!(text.lines().filter(|l| *l == "{\"half\":").count(), 1024);
}

/// UDP has no flow control: what the kernel drops on a full socket is
/// read from the kernel's own count, reported per source and counted as
/// errors. Every datagram sent is either an event out or counted lost.
#[test]
fn udp_loss_is_counted_exactly() {
    let dir = Scratch::new("listen-udp");
    let port = free_port();
    let cfg = format!(
        "data_dir = \"{data}\"\n[sources.udp]\ntype = \"syslog\"\nmode = \"udp\"\naddress = \"127.0.0.1:{port}\"\nreceive_buffer_bytes = 4096\n[sinks.out]\ntype = \"file\"\npath = \"{out}\"\ninputs = [\"udp\"]\n",
        data = dir.path("data").display(),
        out = dir.path("out.ndjson").display(),
    );
    let cfg = dir.write("p.toml", cfg);
    let log = dir.path("rulebox.log");
    let mut child = spawn_run(&cfg, &log);
    rulebox_tests::wait_for("the udp listener", Duration::from_secs(20), || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("listening (udp)"))
    });
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let sent = 30_000;
    for i in 0..sent {
        let msg = format!(
            "<13>1 2026-11-27T00:00:00Z h app - - - {{\"n\":{i},\"pad\":\"{}\"}}",
            "x".repeat(200)
        );
        sock.send_to(msg.as_bytes(), ("127.0.0.1", port)).unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    let status = terminate(&mut child.0);
    let log = std::fs::read_to_string(&log).unwrap();
    let out = std::fs::read_to_string(dir.path("out.ndjson")).unwrap_or_default();
    let received = out.lines().count();
    let done = rulebox_tests::strip_ansi(log.lines().find(|l| l.contains("source done")).unwrap());
    let lost: usize = done
        .split("lost=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    eprintln!("udp: sent {sent}, received {received}, lost {lost}");
    assert!(
        lost > 0,
        "a 4 KiB buffer under 30,000 datagrams drops some: {done}"
    );
    assert_eq!(received + lost, sent, "{done}");
    assert_eq!(status.code(), Some(1), "lost events are errors:\n{log}");
}
