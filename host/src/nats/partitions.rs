//! Partitions on JetStream key-value buckets: who owns which partition
//! ([`Leases`]), and each partition's saved window state ([`KvStore`],
//! the [`crate::partition::Store`] of the `nats` source).
//!
//! A lease is the key `p<N>` in the lease bucket, its value the owner's
//! name. It is taken with a create (which fails if the key exists) and
//! renewed with an update that names the revision the owner last wrote
//! (compare-and-set), every third of the bucket's `max_age`; the server
//! removes a key older than `max_age`, so a lease whose owner died frees
//! itself within one TTL. A renewal that fails means another process took
//! the partition: it is dropped at once. Each process also keeps the key
//! `member.<name>` alive, so that all can count the members and take a
//! fair share, `ceil(partitions / members)`, of the free partitions.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;

use crate::partition;

/// Opens (or makes) a bucket.
pub async fn bucket(
    js: &jetstream::Context,
    name: &str,
    max_age: Duration,
) -> Result<kv::Store, String> {
    if let Ok(s) = js.get_key_value(name).await {
        return Ok(s);
    }
    // The bucket's stream, made as a key-value bucket's is (`KV_<name>`
    // on `$KV.<name>.>`, one value a key): the client's own
    // create_key_value first asks for account details that nats-server
    // 2.9 answers in a form this client does not read.
    let config = jetstream::stream::Config {
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        max_age,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: jetstream::stream::DiscardPolicy::New,
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    };
    js.get_or_create_stream(config)
        .await
        .map_err(|e| format!("key-value bucket {name}: {e}"))?;
    js.get_key_value(name)
        .await
        .map_err(|e| format!("key-value bucket {name}: {e}"))
}

/// This process's leases on the partitions it owns.
pub struct Leases {
    kv: kv::Store,
    owner: String,
    /// Partition → the revision of our last write of its key.
    held: Mutex<BTreeMap<u32, u64>>,
}

impl Leases {
    pub fn new(kv: kv::Store, owner: String) -> Leases {
        Leases {
            kv,
            owner,
            held: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    fn held(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, u64>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn count_held(&self) -> usize {
        self.held().len()
    }

    pub fn holds(&self, p: u32) -> bool {
        self.held().contains_key(&p)
    }

    /// Says this process is alive (its member key, renewed each round).
    pub async fn heartbeat(&self) -> Result<(), String> {
        let key = format!("member.{}", self.owner);
        let value = self.owner.clone().into();
        self.kv
            .put(key, value)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// The live members (at least this one).
    pub async fn members(&self) -> usize {
        let Ok(mut keys) = self.kv.keys().await else {
            return 1;
        };
        let mut n = 0;
        while let Some(Ok(k)) = keys.next().await {
            n += usize::from(k.starts_with("member."));
        }
        n.max(1)
    }

    /// Takes partition `p` if no one holds it.
    pub async fn try_claim(&self, p: u32) -> bool {
        match self
            .kv
            .create(format!("p{p}"), self.owner.clone().into())
            .await
        {
            Ok(rev) => {
                self.held().insert(p, rev);
                true
            }
            Err(_) => false,
        }
    }

    /// Renews every lease held; the partitions lost (taken by another
    /// process, or the bucket unreachable for longer than a lease lasts).
    pub async fn renew(&self) -> Vec<u32> {
        let held: Vec<(u32, u64)> = self.held().iter().map(|(p, r)| (*p, *r)).collect();
        let mut lost = Vec::new();
        for (p, rev) in held {
            let r = self
                .kv
                .update(format!("p{p}"), self.owner.clone().into(), rev)
                .await;
            match r {
                Ok(new) => {
                    self.held().insert(p, new);
                }
                Err(e) => {
                    // A connection problem may pass: the lease is still
                    // ours until its revision is overwritten or it ages
                    // out. Whether it did is only known by reading it.
                    if self.still_ours(p, rev).await {
                        tracing::warn!(partition = p, error = %e, "cannot renew a partition lease yet; trying again");
                        continue;
                    }
                    self.held().remove(&p);
                    lost.push(p);
                }
            }
        }
        lost
    }

    /// Whether the lease on `p` is ours, read from the bucket now (by its
    /// holder's name: a renewal may be under way, changing the revision).
    pub async fn confirm(&self, p: u32) -> bool {
        if !self.holds(p) {
            return false;
        }
        match self.kv.entry(format!("p{p}")).await {
            Ok(Some(e)) => e.operation == kv::Operation::Put && e.value == self.owner.as_bytes(),
            _ => false,
        }
    }

    async fn still_ours(&self, p: u32, rev: u64) -> bool {
        match self.kv.entry(format!("p{p}")).await {
            Ok(Some(e)) => e.revision == rev && e.operation == kv::Operation::Put,
            Ok(None) => false,
            // Unreachable: keep it for now; the next round decides.
            Err(_) => true,
        }
    }

    /// Gives partition `p` up (only if our lease is still the last write).
    pub async fn release(&self, p: u32) {
        let rev = self.held().remove(&p);
        if let Some(rev) = rev {
            let key = format!("p{p}");
            if let Err(e) = self.kv.delete_expect_revision(&key, Some(rev)).await {
                tracing::warn!(partition = p, error = %e, "cannot give the partition lease up; it frees itself when it ages out");
            }
        }
    }

    /// Drops the member key (at the end of the run).
    pub async fn leave(&self) {
        let _ = self.kv.delete(format!("member.{}", self.owner)).await;
    }
}

/// Partition states in a key-value bucket: key `p<N>`, value the checked
/// envelope of [`partition::encode`].
pub struct KvStore {
    pub kv: kv::Store,
    /// Names the stream in the envelope.
    pub stream: String,
    /// With claimed partitions, the leases to give up.
    pub leases: Option<std::sync::Arc<Leases>>,
}

impl KvStore {
    /// Partition `p`'s saved state and the sequence it covers, if any.
    pub async fn load(&self, p: u32) -> Result<Option<(Vec<u8>, u64)>, String> {
        let v = self
            .kv
            .get(format!("p{p}"))
            .await
            .map_err(|e| e.to_string())?;
        v.map(|b| partition::decode(&b)).transpose()
    }
}

impl partition::Store for KvStore {
    fn save<'a>(&'a self, p: u32, state: &'a [u8], seq: u64) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            // Only the lease's holder writes: a process whose lease aged
            // out (a long pause, a slow end) must not overwrite the state
            // of the one that took the partition.
            if let Some(l) = &self.leases
                && !l.confirm(p).await
            {
                return Err("the partition's lease is no longer ours: not saved".into());
            }
            let data = partition::encode(&self.stream, p, state, seq);
            let len = data.len();
            let put = self.kv.put(format!("p{p}"), data.into());
            match tokio::time::timeout(Duration::from_secs(10), put).await {
                Ok(Ok(_)) => {
                    tracing::debug!(partition = p, seq, bytes = len, "partition state saved");
                    Ok(())
                }
                Ok(Err(e)) => Err(format!(
                    "{e} ({len} bytes; a state must fit the server's max_payload)"
                )),
                Err(_) => Err("timed out".into()),
            }
        })
    }

    fn release(&self, p: u32) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(l) = &self.leases {
                l.release(p).await;
            }
        })
    }
}
