//! Writes generated NDJSON events to stdout.
//!
//! `gen-events [--count N] [--seed S] [--day-start-ms T]`: the sample mix
//! (every schema, a few alerting transfers, some malformed lines).
//! `gen-events --boundaries SCHEMA`: the spec §5 boundary set in one schema.
//! `gen-events --bench-schema SCHEMA [--count N]`: the benchmark's mix of
//! connections (`bench_events`: 300–700-byte events, no malformed lines),
//! every event in one schema.

use std::io::Write;

use rulebox_bench::{Schema, bench_events_in, boundary_conns, render, sample};

fn main() {
    let mut count = 3000usize;
    let mut seed = 1u64;
    let mut day = 1_763_683_200_000i64; // 2025-11-21T00:00:00Z
    let mut boundaries: Option<Schema> = None;
    let mut bench: Option<Schema> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--count" => count = val().parse().unwrap_or_else(|_| usage("bad --count")),
            "--seed" => seed = val().parse().unwrap_or_else(|_| usage("bad --seed")),
            "--day-start-ms" => {
                day = val()
                    .parse()
                    .unwrap_or_else(|_| usage("bad --day-start-ms"))
            }
            "--boundaries" => {
                boundaries = Some(Schema::parse(&val()).unwrap_or_else(|| usage("unknown schema")))
            }
            "--bench-schema" => {
                bench = Some(Schema::parse(&val()).unwrap_or_else(|| usage("unknown schema")))
            }
            _ => usage(&format!("unknown argument {a}")),
        }
    }
    let lines = match (boundaries, bench) {
        (Some(s), _) => boundary_conns(day)
            .iter()
            .enumerate()
            .map(|(i, c)| render(c, s, i as u64))
            .collect(),
        (None, Some(s)) => bench_events_in(count, seed, day, &[s]),
        (None, None) => sample(count, seed, day),
    };
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    for l in lines {
        if writeln!(out, "{l}").is_err() {
            std::process::exit(1);
        }
    }
    let _ = out.flush();
}

fn usage(msg: &str) -> ! {
    eprintln!(
        "gen-events: {msg}\nusage: gen-events [--count N] [--seed S] [--day-start-ms T] [--boundaries SCHEMA | --bench-schema SCHEMA]\nschemas: cim|qradar|ecs|ocsf|zeek|sysmon"
    );
    std::process::exit(2)
}
