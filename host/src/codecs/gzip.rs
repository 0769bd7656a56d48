//! gzip bodies for sinks, at the fast level. (Sources inflate piece by
//! piece, counting each piece: see `sources::http_server`.)

use std::io::Write;

/// Compresses at the fast level: sinks compress on the hot path.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4),
        flate2::Compression::fast(),
    );
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}
