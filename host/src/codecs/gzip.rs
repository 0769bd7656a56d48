//! gzip bodies for sinks, at the fast level. (Sources inflate piece by
//! piece, counting each piece: see `sources::http_server`.)

use std::io::Write;

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// A gzip member's header as this writer makes it: deflate, no flags, no
/// time, "fastest" (as the fast level is), operating system unknown.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255];

/// A gzip writer at the fast level (sinks compress on the hot path) that
/// keeps its deflate state from one body to the next. A new state costs
/// zlib-rs an allocation and the clearing of its tables, more than a
/// small body's compression; a reset does neither. Each body is deflated
/// straight into the buffer it goes out in.
pub struct Gzip {
    deflate: Compress,
}

impl Default for Gzip {
    fn default() -> Gzip {
        Gzip {
            deflate: Compress::new(Compression::fast(), false),
        }
    }
}

impl Gzip {
    /// `data` as one gzip member.
    pub fn compress(&mut self, data: &[u8]) -> Vec<u8> {
        self.deflate.reset();
        let mut out = Vec::with_capacity(HEADER.len() + data.len() / 4 + 64);
        out.extend_from_slice(&HEADER);
        let mut read = 0;
        loop {
            let before = self.deflate.total_in();
            let done = self
                .deflate
                .compress_vec(&data[read..], &mut out, FlushCompress::Finish);
            read += (self.deflate.total_in() - before) as usize;
            match done {
                Ok(Status::StreamEnd) => break,
                // The output is full: room for as much again.
                Ok(Status::Ok | Status::BufError) => out.reserve(out.capacity().max(1024)),
                // Not expected of a whole input and room to write; a new
                // state, and the body compressed the plain way.
                Err(_) => {
                    *self = Gzip::default();
                    return gzip_anew(data);
                }
            }
        }
        let mut crc = Crc::new();
        crc.update(data);
        out.extend_from_slice(&crc.sum().to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out
    }
}

/// `data` gzipped with a deflate state of its own.
fn gzip_anew(data: &[u8]) -> Vec<u8> {
    let mut e =
        flate2::write::GzEncoder::new(Vec::with_capacity(data.len() / 4), Compression::fast());
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(gz)
            .read_to_end(&mut out)
            .expect("a valid gzip member");
        out
    }

    /// One writer, body after body (empty, small, larger than its first
    /// guess at the output, not compressible): each inflates to itself,
    /// is the same bytes as a new writer's, and the header is gzip's own
    /// (flate2 reads it, CRC and length checked).
    #[test]
    fn bodies_one_after_another_inflate_to_themselves() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut noise = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| crate::testing::step(&mut seed) as u8)
                .collect()
        };
        let text: Vec<u8> = (0..20_000)
            .flat_map(|i| format!("{{\"n\":{i},\"host\":\"h{}\"}}\n", i % 7).into_bytes())
            .collect();
        let bodies = [
            Vec::new(),
            b"x".to_vec(),
            text.clone(),
            noise(300_000),
            text[..1000].to_vec(),
            noise(10),
        ];
        let mut reused = Gzip::default();
        for body in &bodies {
            let gz = reused.compress(body);
            assert_eq!(gunzip(&gz), *body);
            assert_eq!(gz, Gzip::default().compress(body));
            assert_eq!(&gz[..10], &HEADER);
        }
        // Text compresses; noise does not, and still round-trips.
        assert!(reused.compress(&text).len() < text.len() / 4);
    }
}
