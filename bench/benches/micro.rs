//! Micro-benchmarks (criterion): the rule's event reader per preset, IP
//! classification, an aggregation update, one sandboxed plugin call per
//! batch size, and the Splunk HEC codec (a request body read into events,
//! events written back out as envelopes). Run: `cargo bench -p rulebox-bench --bench micro` (after
//! `scripts/bench.sh` or `scripts/sample.sh` built the `.wasm`).

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rule_t1071_002::aggregate::{Aggregator, Observation, Settings};
use rule_t1071_002::config::{FieldOverrides, PresetName};
use rule_t1071_002::net::Networks;
use rule_t1071_002::schema::Preset;
use rulebox_bench::{Conn, Schema, render};
use rulebox_plugin::json::Scanner;

fn conns(n: usize) -> Vec<Conn> {
    (0..n)
        .map(|i| Conn {
            time_ms: 1_763_683_200_000 + i as i64 * 1000,
            src: format!("10.{}.{}.{}", i % 7, i % 251, 1 + i % 253),
            dest: format!(
                "{}.{}.{}.{}",
                23 + i % 150,
                i % 256,
                (i / 7) % 256,
                1 + i % 254
            ),
            src_port: 49_152 + (i % 16_000) as u16,
            port: [21, 443, 80, 445, 53][i % 5],
            port_as_string: i % 10 == 0,
            allowed: i % 7 != 0,
            bytes_out: Some(i as u64 * 37 % 50_000),
            bytes_in: Some(i as u64 * 91 % 500_000),
            user: (i % 3 == 0).then(|| "alice".to_string()),
            process: (i % 4 == 0).then(|| "ftp.exe".to_string()),
        })
        .collect()
}

fn reader(c: &mut Criterion) {
    let cs = conns(1000);
    let mut g = c.benchmark_group("reader");
    for (schema, kind) in [
        (Schema::Cim, PresetName::Cim),
        (Schema::Qradar, PresetName::Qradar),
        (Schema::Ecs, PresetName::Ecs),
        (Schema::Ocsf, PresetName::Ocsf),
        (Schema::Zeek, PresetName::Zeek),
        (Schema::Sysmon, PresetName::Sysmon),
    ] {
        let events: Vec<String> = cs
            .iter()
            .enumerate()
            .map(|(i, c)| render(c, schema, i as u64))
            .collect();
        let bytes: usize = events.iter().map(String::len).sum();
        let preset = Preset::new(kind, &FieldOverrides::default(), None);
        let mut scanner = Scanner::new();
        g.throughput(Throughput::Elements(events.len() as u64));
        g.bench_function(
            BenchmarkId::new(
                "scan+read",
                format!("{}-{}B", schema.name(), bytes / events.len()),
            ),
            |b| {
                b.iter(|| {
                    let mut ports = 0u64;
                    for e in &events {
                        let obj = scanner.scan(e.as_bytes()).expect("valid event");
                        let t = preset.target(&obj);
                        let r = preset.details(&obj);
                        ports += u64::from(t.port.unwrap_or(0)) + r.bytes_out.unwrap_or(0);
                    }
                    std::hint::black_box(ports)
                })
            },
        );
    }
    g.finish();
}

fn classify(c: &mut Criterion) {
    let internal = rule_t1071_002::config::Config::default().internal_networks;
    let nets = Networks::parse(&internal, "internal_networks").unwrap();
    let ips: Vec<IpAddr> = conns(1000)
        .iter()
        .flat_map(|c| [c.src.parse().unwrap(), c.dest.parse().unwrap()])
        .chain([
            "::ffff:10.0.0.1".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
        ])
        .collect();
    let mut g = c.benchmark_group("ip");
    g.throughput(Throughput::Elements(ips.len() as u64));
    g.bench_function("internal?", |b| {
        b.iter(|| ips.iter().filter(|ip| nets.contains(**ip)).count())
    });
    let texts: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
    g.bench_function("parse+internal?", |b| {
        b.iter(|| {
            texts
                .iter()
                .filter_map(|t| rule_t1071_002::net::parse_ip(t))
                .filter(|ip| nets.contains(*ip))
                .count()
        })
    });
    g.finish();
}

fn aggregate(c: &mut Criterion) {
    let settings = Settings {
        window_ms: 86_400_000,
        lateness_ms: 300_000,
        min_connections: 3,
        max_keys: 1_000_000,
        max_users: 32,
        exfil_medium_bytes: 1 << 20,
        exfil_high_bytes: 10 << 20,
        labels: vec!["FTP/FTPS".into(), "SMB".into(), "TFTP".into()],
    };
    let obs: Vec<(IpAddr, IpAddr)> = conns(100_000)
        .iter()
        .map(|c| (c.src.parse().unwrap(), c.dest.parse().unwrap()))
        .collect();
    let mut g = c.benchmark_group("aggregate");
    for (name, distinct) in [
        ("repeated-keys-1k", 1000usize),
        ("distinct-keys-100k", 100_000),
    ] {
        g.throughput(Throughput::Elements(obs.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut agg = Aggregator::new(settings.clone());
                let mut emitted = 0usize;
                for i in 0..obs.len() {
                    let (src, dest) = obs[i % distinct];
                    let o = Observation {
                        time_ms: Some(1_763_683_200_000 + i as i64),
                        src,
                        dest,
                        port: 21,
                        protocol: 0,
                        by_user: false,
                        process: "ftp.exe",
                        user: "alice",
                        bytes_out: 1000,
                        bytes_in: 100,
                        bytes_total: None,
                    };
                    agg.record(&o, 0, &mut |l| emitted += l.len());
                }
                std::hint::black_box((emitted, agg.tracked_keys()))
            })
        });
    }
    g.finish();
}

fn plugin_call(c: &mut Criterion) {
    use rulebox::sandbox::{Limits, Plugin, Runtime};
    use rulebox::transforms::wasm::{Options, WasmTransform};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let wasm = root.join("target/wasm32-wasip1/wasm/rule_t1071_002.wasm");
    assert!(
        wasm.exists(),
        "{} is missing: run scripts/bench.sh first",
        wasm.display()
    );
    let rt = Runtime::new().unwrap();
    let limits = Limits {
        max_memory_bytes: 64 << 20,
        deadline: std::time::Duration::from_millis(100),
    };
    let cache = root.join("target/bench/data/cache");
    let plugin = Arc::new(Plugin::load(&rt, "t", &wasm, Some(&cache), limits).unwrap());
    let mut t = WasmTransform::new("t", plugin, b"{}".to_vec(), Options::default()).unwrap();
    let lines = rulebox_bench::sample(4096, 9, 1_763_683_200_000);
    let mut g = c.benchmark_group("plugin-call");
    for size in [16usize, 64, 256, 1024, 4096] {
        let mut batch = rulebox::batch::Batch::default();
        for l in &lines[..size] {
            batch.push_line(l.as_bytes());
        }
        let mut outs = t.new_outputs();
        g.throughput(Throughput::Elements(size as u64));
        g.bench_function(BenchmarkId::new("events-per-call", size), |b| {
            b.iter(|| {
                t.process(&batch, 0, &mut outs);
                outs.clear();
            })
        });
    }
    g.finish();
}

/// The HEC codec on one request of 500 envelopes of the sample's events
/// (as `hec-load` sends them): reading the body into a batch, and writing
/// each event back out as an envelope (the sink's encoding), read again or
/// vouched for as JSON.
fn hec_codec(c: &mut Criterion) {
    use rulebox::batch::Batch;
    use rulebox::codecs::hec::{Defaults, read_event_body, write_envelope};
    let events: Vec<Vec<u8>> = rulebox_bench::sample(600, 5, 1_763_683_200_000)
        .into_iter()
        // Shippers send JSON objects; the sample's broken lines are left out.
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| v.is_object()))
        .take(500)
        .map(String::into_bytes)
        .collect();
    let body = rulebox_bench::hec::envelope_body(&events, "fw:traffic");
    let mut g = c.benchmark_group("hec");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("read-body", |b| {
        b.iter(|| {
            let mut batch = Batch::default();
            read_event_body(&body, &mut batch).expect("a valid body");
            batch
        })
    });
    let mut batch = Batch::default();
    read_event_body(&body, &mut batch).expect("a valid body");
    let defaults = Defaults::default();
    let mut scanner = Scanner::new();
    let mut out = Vec::new();
    // As the sink writes them when it reads each event to know it is JSON,
    // and when the rule's transform vouched for them (`Batch::all_json`).
    for (name, json) in [
        ("write-envelopes", false),
        ("write-envelopes-vouched", true),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                for (i, line) in batch.iter().enumerate() {
                    write_envelope(&mut out, line, batch.meta(i), json, &defaults, &mut scanner);
                }
                out.len()
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = micro;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(2));
    targets = reader, classify, aggregate, plugin_call, hec_codec
}
criterion_main!(micro);
