//! Scanning ahead: for a plugin that reads events as objects, the objects
//! index of the next batch is made on a thread of its own while the
//! plugin runs the batch before. The scan is the host's largest cost and
//! the sandboxed rule the next; with a core for each they overlap instead
//! of adding up. What is made, and within what budget, is unchanged
//! ([`Indexer`]); only where it runs moves.
//!
//! A batch is indexed ahead only when the transform's screen would let
//! every line of it by (no line over `max_line_bytes`, all of it UTF-8);
//! any other batch, and every batch after the indexing thread failed, is
//! screened and indexed by the transform itself as before. At most one
//! indexed batch waits for the transform, and the thread holds one more:
//! two batches' indexes beside the input channel's batches.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::batch::Batch;
use crate::channel::Rx;
use crate::sandbox::{Events, Indexed, Indexer};

/// What indexes a transform's batches ahead ([`super::WasmTransform::ahead`]).
pub struct Ahead {
    pub(super) indexer: Indexer,
    pub(super) max_line_bytes: usize,
}

impl Ahead {
    /// The index of `b`, when the screen would let all of it by; None
    /// otherwise (the transform screens and indexes it). See
    /// [`Indexer::index_screened`].
    pub fn prepare(&mut self, b: &Batch) -> Option<Indexed> {
        let index = Vec::with_capacity(b.bytes().len() / 4);
        let max = self.max_line_bytes;
        self.indexer.index_screened(index, Events::of(b), max)
    }
}

/// A batch, and its index when made ahead.
pub type Prepared = (Arc<Batch>, Option<Indexed>);

/// A transform's input: its channel, or that channel through an indexing
/// thread.
pub enum Input {
    Direct(Rx),
    Ahead(mpsc::Receiver<Prepared>),
}

impl Input {
    /// Through a thread of `ahead`'s when there is one and the thread can
    /// be started (else, logged, straight from `rx`).
    pub fn new(id: &str, rx: Rx, ahead: Option<Ahead>) -> Input {
        let Some(ahead) = ahead else {
            return Input::Direct(rx);
        };
        let (tx, prepared) = mpsc::channel(1);
        let held = Arc::new(Mutex::new(Some(rx)));
        let theirs = held.clone();
        let id_owned = id.to_string();
        let started = std::thread::Builder::new()
            .name("rulebox-index".into())
            .spawn(move || {
                let rx = theirs.lock().ok().and_then(|mut r| r.take());
                if let Some(rx) = rx {
                    index_ahead(&id_owned, ahead, rx, tx);
                }
            });
        match started {
            Ok(_) => Input::Ahead(prepared),
            Err(e) => {
                tracing::warn!(transform = %id, error = %e, "cannot start the thread that scans ahead; scanning in turn");
                let rx = held.lock().ok().and_then(|mut r| r.take());
                rx.map_or(Input::Ahead(prepared), Input::Direct)
            }
        }
    }

    /// The next batch; None once the input has ended.
    pub async fn recv(&mut self) -> Option<Prepared> {
        match self {
            Input::Direct(rx) => rx.recv().await.map(|b| (b, None)),
            Input::Ahead(prepared) => prepared.recv().await,
        }
    }
}

/// The indexing thread: every batch of `rx` goes on to `tx`, in order,
/// with its index when [`Ahead::prepare`] makes one. A panic while
/// indexing stops the indexing, not the batches.
fn index_ahead(id: &str, mut ahead: Ahead, mut rx: Rx, tx: mpsc::Sender<Prepared>) {
    let mut failed = false;
    while let Some(b) = rx.blocking_recv() {
        let index = if failed {
            None
        } else {
            match std::panic::catch_unwind(AssertUnwindSafe(|| ahead.prepare(&b))) {
                Ok(i) => i,
                Err(_) => {
                    tracing::error!(transform = %id, "scanning ahead failed; the transform scans from now on");
                    failed = true;
                    None
                }
            }
        };
        if tx.blocking_send((b, index)).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use rulebox_abi::frame::index::{IndexRequest, index_batch};
    use rulebox_abi::json::Scanner;

    use super::*;

    fn ahead(max_line_bytes: usize) -> Ahead {
        let request = IndexRequest::new(Some(&["src_ip", "dest_port"]), None);
        Ahead {
            indexer: Indexer::new(Arc::new(request)),
            max_line_bytes,
        }
    }

    fn batch(lines: &[&[u8]]) -> Arc<Batch> {
        let mut b = Batch::with_capacity(256);
        for l in lines {
            b.push_line(l);
        }
        Arc::new(b)
    }

    const GOOD: &[u8] = br#"{"src_ip":"10.0.0.5","dest_port":21,"x":[1,{"y":2}]}"#;

    #[test]
    fn a_clean_batch_gets_the_index_the_transform_would_make() {
        let b = batch(&[GOOD, b"not json", br#"{"dest_port":"445"}"#]);
        let made = ahead(1 << 20).prepare(&b).expect("indexed ahead");
        let request = IndexRequest::new(Some(&["src_ip", "dest_port"]), None);
        let mut want = Vec::new();
        index_batch(&mut Scanner::new(), &request, b.bytes(), 3, &mut want).unwrap();
        assert_eq!(made.index(), Some(&want[..]));
    }

    /// A HEC request's batch, whose object events keep the members their
    /// envelopes' scan found: the index made from them is the scan's.
    #[test]
    fn kept_scans_give_the_index_a_scan_gives() {
        let body = concat!(
            r#"{"event":{"src_ip":"10.0.0.5","dest_port":21,"x":[1,{"y":2}]}}"#,
            r#"{"event":"text"}{"event":{"dest_port":"445","src_ip":null}}"#,
        );
        let mut b = Batch::default();
        crate::codecs::hec::read_event_body(body.as_bytes(), &mut b).unwrap();
        assert!(b.scans().is_some());
        let made = ahead(1 << 20).prepare(&b).expect("indexed ahead");
        let request = IndexRequest::new(Some(&["src_ip", "dest_port"]), None);
        let mut want = Vec::new();
        index_batch(&mut Scanner::new(), &request, b.bytes(), 3, &mut want).unwrap();
        assert_eq!(made.index(), Some(&want[..]));
        assert!(made.valid_utf8());
    }

    #[test]
    fn batches_the_screen_would_stop_are_left_to_the_transform() {
        let mut a = ahead(40);
        assert!(
            a.prepare(&batch(&[b"\xff\xfe{}"])).is_none(),
            "invalid UTF-8"
        );
        assert!(
            a.prepare(&batch(&[GOOD])).is_none(),
            "longer than max_line_bytes"
        );
        assert!(a.prepare(&batch(&[])).is_none(), "no events");
        assert!(a.prepare(&batch(&[b"{}"])).is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn every_batch_comes_through_in_order() {
        let (tx, rx) = crate::channel::bounded();
        let mut input = Input::new("t", rx, Some(ahead(1 << 20)));
        let sent = [batch(&[GOOD]), batch(&[b"\xff"]), batch(&[GOOD, GOOD])];
        let feed = {
            let sent = sent.clone();
            tokio::spawn(async move {
                for b in sent {
                    tx.send(b).await.unwrap();
                }
            })
        };
        let mut got = Vec::new();
        while let Some((b, index)) = input.recv().await {
            got.push((b.count(), index.is_some()));
        }
        feed.await.unwrap();
        assert_eq!(got, [(1, true), (1, false), (2, true)]);
    }
}
