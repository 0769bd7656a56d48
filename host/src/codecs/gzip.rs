//! gzip bodies: bounded decompression for sources (a body may inflate to
//! at most a given size), fast compression for sinks.

use std::io::{Read, Write};

#[derive(Debug)]
pub enum GunzipError {
    /// The body inflates past the limit.
    TooLarge,
    Bad(std::io::Error),
}

/// Inflates `data` (one or more gzip members), refusing more than `max` bytes.
pub fn gunzip(data: &[u8], max: usize) -> Result<Vec<u8>, GunzipError> {
    let mut out = Vec::new();
    let mut d = flate2::read::MultiGzDecoder::new(data).take(max as u64 + 1);
    d.read_to_end(&mut out).map_err(GunzipError::Bad)?;
    if out.len() > max {
        return Err(GunzipError::TooLarge);
    }
    Ok(out)
}

/// Compresses at the fast level: sinks compress on the hot path.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4),
        flate2::Compression::fast(),
    );
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}
