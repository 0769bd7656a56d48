//! Connections rendered in the raw formats the T1071.002 rule reads
//! (`docs/t1071-002.md` §6), for the benchmarks: one line per connection
//! (Cisco ASA: a built and a teardown message), with the fields each
//! format's vendor documentation gives them and a syslog header in front
//! where devices send one.

pub use rule_t1071_002::raw::Format as RawFormat;

use crate::{Conn, Rng, bench_keys, pick_conn};

/// Zeek conn.log's TSV header.
pub const ZEEK_CONN_HEADER: &[&str] = &[
    "#separator \\x09",
    "#set_separator\t,",
    "#empty_field\t(empty)",
    "#unset_field\t-",
    "#path\tconn",
    "#open\t2025-11-21-00-00-00",
    "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents",
    "#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\tbool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]",
];

fn dash(v: Option<u64>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

/// `Nov 21 2025 09:00:00`.
fn syslog_time(ms: i64) -> String {
    let t = crate::rfc3339(ms); // 2025-11-21T09:00:00.000Z
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][t[5..7].parse::<usize>().unwrap_or(1) - 1];
    format!("{month} {} {} {}", &t[8..10], &t[..4], &t[11..19])
}

/// `c` as lines of `format` (`seq` numbers it).
pub fn render_raw(c: &Conn, format: RawFormat, seq: u64) -> Vec<String> {
    let (src, dst, sp, dp) = (&c.src, &c.dest, c.src_port, c.port);
    let (out, inb) = (c.bytes_out, c.bytes_in);
    let user = c.user.as_deref().unwrap_or("");
    let when = syslog_time(c.time_ms);
    let line = match format {
        RawFormat::ZeekTsv => format!(
            "{}.{:03}000\tC{seq:016x}\t{src}\t{sp}\t{dst}\t{dp}\ttcp\t-\t1.250000\t{}\t{}\t{}\tT\tF\t0\tShADadFf\t12\t900\t10\t4000\t-",
            c.time_ms / 1000,
            c.time_ms % 1000,
            dash(out),
            dash(inb),
            if c.allowed { "SF" } else { "REJ" }
        ),
        RawFormat::Asa => {
            let total = out.unwrap_or(0) + inb.unwrap_or(0);
            let built = format!(
                "<166>{when} fw01 : %ASA-6-302013: Built outbound TCP connection {seq} for outside:{dst}/{dp} ({dst}/{dp}) to inside:{src}/{sp} (198.51.100.1/{sp})"
            );
            let end = if c.allowed {
                format!(
                    "<166>{when} fw01 : %ASA-6-302014: Teardown TCP connection {seq} for outside:{dst}/{dp} to inside:{src}/{sp} duration 0:00:01 bytes {total} TCP FINs"
                )
            } else {
                format!(
                    "<164>{when} fw01 : %ASA-4-106023: Deny tcp src inside:{src}/{sp} dst outside:{dst}/{dp} by access-group \"inside_in\" [0x0, 0x0]"
                )
            };
            return vec![built, end];
        }
        RawFormat::Cef => format!(
            "<134>{when} fw01 CEF:0|Acme|Firewall|4.2|100|Connection closed|3|rt={} src={src} spt={sp} dst={dst} dpt={dp} proto=TCP act={} out={} in={} suser={user} sproc={} cs1Label=Rule Name cs1=egress default",
            c.time_ms,
            if c.allowed { "allow" } else { "deny" },
            out.unwrap_or(0),
            inb.unwrap_or(0),
            c.process.as_deref().unwrap_or("")
        ),
        RawFormat::Leef => format!(
            "<13>{when} fw01 LEEF:2.0|Acme|Firewall|4.2|{}|^|src={src}^dst={dst}^srcPort={sp}^dstPort={dp}^proto=TCP^srcBytes={}^dstBytes={}^usrName={user}^devTime={}^cat=traffic",
            if c.allowed {
                "TRAFFIC_ALLOW"
            } else {
                "TRAFFIC_DENY"
            },
            out.unwrap_or(0),
            inb.unwrap_or(0),
            c.time_ms
        ),
        RawFormat::PanOs => {
            let t = crate::rfc3339(c.time_ms).replace('-', "/");
            let t = format!("{} {}", &t[..10], &t[11..19]);
            let action = if c.allowed { "allow" } else { "deny" };
            let (o, i) = (out.unwrap_or(0), inb.unwrap_or(0));
            format!(
                "<14>{when} fw01 1,{t},012801000001,TRAFFIC,end,2560,{t},{src},{dst},198.51.100.1,{dst},egress,{user},,ms-ds-smb,vsys1,trust,untrust,ethernet1/2,ethernet1/1,default,,{seq},1,{sp},{dp},{sp},{dp},0x400000,tcp,{action},{},{o},{i},22,{t},1,any,,{seq},0x0,10.0.0.0-10.255.255.255,United States,,12,10,tcp-fin",
                o + i
            )
        }
        RawFormat::Fortigate => format!(
            "<189>date={} time={} devname=\"FGT60F\" devid=\"FGT60FTK0000\" logid=\"0000000013\" type=\"traffic\" subtype=\"forward\" level=\"notice\" vd=\"root\" eventtime={}000000 srcip={src} srcport={sp} srcintf=\"internal\" dstip={dst} dstport={dp} dstintf=\"wan1\" sessionid={seq} proto=6 action=\"{}\" policyid=1 service=\"SMB\" duration=1 sentbyte={} rcvdbyte={} user=\"{user}\"",
            &crate::rfc3339(c.time_ms)[..10],
            &crate::rfc3339(c.time_ms)[11..19],
            c.time_ms,
            if c.allowed { "close" } else { "deny" },
            out.unwrap_or(0),
            inb.unwrap_or(0)
        ),
        RawFormat::Kv => format!(
            "<134>{when} host app: src_ip={src} src_port={sp} dest_ip={dst} dest_port={dp} transport=tcp action={} bytes_out={} bytes_in={} user=\"{user}\" _time={}",
            if c.allowed { "allowed" } else { "blocked" },
            out.unwrap_or(0),
            inb.unwrap_or(0),
            c.time_ms / 1000
        ),
    };
    vec![line]
}

/// About `n` lines of `format` over one day (the same connection mix as
/// [`crate::bench_events`]); Zeek TSV starts with its header.
pub fn raw_bench_events(n: usize, format: RawFormat, seed: u64, day_start_ms: i64) -> Vec<String> {
    let mut r = Rng::new(seed);
    let keys = bench_keys(&mut r);
    let mut lines = Vec::with_capacity(n + 8);
    if format == RawFormat::ZeekTsv {
        lines.extend(ZEEK_CONN_HEADER.iter().map(|s| s.to_string()));
    }
    let mut i = 0u64;
    while lines.len() < n {
        let time = day_start_ms + (i as i64 * 86_000_000 / n.max(1) as i64);
        let conn = pick_conn(&mut r, &keys, time);
        lines.extend(render_raw(&conn, format, i));
        i += 1;
    }
    lines.truncate(n);
    lines
}
