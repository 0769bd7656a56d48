//! Bytes of rule state per tracked key: records N distinct keys (default
//! 1,000,000) in the T1071.002 aggregator, compiled natively, under an
//! allocator that counts live bytes. (In the .wasm build pointers are 4
//! bytes instead of 8, so this is an upper bound for the sandboxed rule.)
//!
//! usage: key-memory [N]

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};

use rule_t1071_002::aggregate::{Aggregator, Observation, Settings};

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("N"))
        .unwrap_or(1_000_000);
    let mut agg = Aggregator::new(Settings {
        window_ms: 86_400_000,
        lateness_ms: 300_000,
        min_connections: 3,
        max_keys: n,
        max_users: 32,
        exfil_medium_bytes: 1 << 20,
        exfil_high_bytes: 10 << 20,
        labels: vec!["FTP/FTPS".into(), "SMB".into(), "TFTP".into()],
    });
    let before = LIVE.load(Ordering::Relaxed);
    let mut emitted = 0usize;
    for i in 0..n as u32 {
        // Distinct (source, destination) pairs; a process name and a user
        // from small sets, as real traffic has.
        let src = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (i % 65_536)));
        let dest = IpAddr::V4(Ipv4Addr::from(0x2d00_0000 | (i / 65_536)));
        let o = Observation {
            time_ms: Some(1_763_683_200_000 + i64::from(i)),
            src,
            dest,
            port: 21,
            protocol: 0,
            by_user: false,
            process: ["ftp.exe", "smbclient", "curl"][i as usize % 3],
            user: ["alice", "bob", "svc_backup", "carol"][i as usize % 4],
            bytes_out: 1000,
            bytes_in: 100,
            bytes_total: None,
        };
        agg.record(&o, 0, &mut |l| emitted += l.len());
    }
    let after = LIVE.load(Ordering::Relaxed);
    let keys = agg.tracked_keys();
    let live = after - before;
    println!(
        "key-memory: {keys} keys tracked, {live} bytes live ({:.1} bytes/key), peak during the run {:.1} bytes/key",
        live as f64 / keys as f64,
        (PEAK.load(Ordering::Relaxed) - before) as f64 / keys as f64
    );
    std::hint::black_box(emitted);
}
