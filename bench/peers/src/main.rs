//! `rulebox-peers`: what a user would pick instead of rulebox, timed against
//! `rulebox run` on the same input in the same run (built and run by
//! `scripts/bench-peers.sh`; see docs/performance.md, "Against other tools").
//!
//! ```text
//! rulebox-peers [--events N] [--rounds R] [--out FILE]
//! rulebox-peers --case splice|value|vrl INPUT OUTPUT ALERTS
//! ```
//!
//! The first form is the whole run (suite.rs); the second runs one peer,
//! file to file, in its own process, as the run times it.

mod check;
mod cim;
mod splice_peer;
mod suite;
mod tally;
mod value_peer;
mod vrl_peer;

fn usage(msg: &str) -> ! {
    eprintln!(
        "rulebox-peers: {msg}\nusage: rulebox-peers [--events N] [--rounds R] [--out FILE]\n       \
         rulebox-peers --case splice|value|vrl INPUT OUTPUT ALERTS"
    );
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--case") {
        return match &args[1..] {
            [peer, input, output, alerts] => case(peer, input, output, alerts),
            _ => usage("--case needs a peer and three files"),
        };
    }
    let mut o = suite::Options {
        events: 1_000_000,
        rounds: 5,
        out: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .unwrap_or_else(|| usage(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--events" => o.events = val().parse().unwrap_or_else(|_| usage("bad --events")),
            "--rounds" => o.rounds = val().parse().unwrap_or_else(|_| usage("bad --rounds")),
            "--out" => o.out = Some(val().into()),
            _ => usage(&format!("unknown argument {a}")),
        }
    }
    if o.events == 0 || o.rounds == 0 {
        usage("--events and --rounds must be at least 1");
    }
    println!("{}", suite::run(&o));
}

/// One peer, file to file: what a timed run measures.
fn case(peer: &str, input: &str, output: &str, alerts: &str) {
    let data = std::fs::read(input).unwrap_or_else(|e| usage(&format!("{input}: {e}")));
    let (mut out, mut al) = (Vec::with_capacity(data.len() + data.len() / 8), Vec::new());
    match peer {
        "splice" => splice_peer::run(&data, &mut out, &mut al),
        "value" => value_peer::run(&data, &mut out, &mut al),
        "vrl" => vrl_peer::run(&data, &mut out),
        _ => usage(&format!("unknown peer {peer}")),
    }
    for (path, bytes) in [(output, &out), (alerts, &al)] {
        if let Err(e) = std::fs::write(path, bytes) {
            eprintln!("rulebox-peers: {path}: {e}");
            std::process::exit(1);
        }
    }
}
