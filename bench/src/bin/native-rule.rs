//! The T1071.002 rule compiled natively and called directly, batch by batch,
//! through the same SDK path the wasm exports use: the cost of the rule
//! without a sandbox. `native-rule FILE [CONFIG_JSON]` prints events/s.

use std::time::Instant;

use rule_t1071_002::T1071;
use rulebox_plugin::Runner;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| {
        eprintln!("usage: native-rule FILE [CONFIG_JSON]");
        std::process::exit(2)
    });
    let config = args.next().unwrap_or_else(|| "{}".into());
    let data = std::fs::read(&path).unwrap_or_else(|e| {
        eprintln!("native-rule: {path}: {e}");
        std::process::exit(1)
    });
    let mut runner = Runner::<T1071>::new();
    runner.init(config.as_bytes());
    let start = Instant::now();
    let (mut events, mut frame_bytes) = (0usize, 0usize);
    let mut rest = &data[..];
    while !rest.is_empty() {
        // Batches of up to 1024 complete lines, like the host's.
        let mut end = 0;
        let mut n = 0;
        for (i, &c) in rest.iter().enumerate() {
            if c == b'\n' {
                n += 1;
                end = i + 1;
                if n == 1024 {
                    break;
                }
            }
        }
        if n == 0 {
            break;
        }
        frame_bytes += runner.process(&rest[..end], n, 0).len();
        events += n;
        rest = &rest[end..];
    }
    frame_bytes += runner.flush(0).len();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "native-rule: {events} events in {secs:.3} s = {:.0} events/s, {:.1} MB/s ({frame_bytes} frame bytes)",
        events as f64 / secs,
        data.len() as f64 / secs / 1e6
    );
}
