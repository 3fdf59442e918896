//! openraft's `RaftStateMachine`: committed entries applied in log order to
//! a `MetadataImage`, each new image published on a `watch` channel, and
//! snapshots of the image (its `to_records()`) kept in `raft-snapshot`.
//!
//! A record that does not decode, or that the image refuses, is logged and
//! skipped: every node skips the same records in the same order, so the
//! images stay equal, and a bad record never stops the quorum.

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use openraft::storage::RaftStateMachine;
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, RaftSnapshotBuilder, Snapshot, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership,
};
use tokio::sync::watch;
use wharf_coordinator::metadata::{ImageSnapshot, MetadataImage, MetadataRecord};
use wharf_storage::quorum::{self as disk, QuorumSnapshot};

use super::log_store::blocking;
use super::types::{
    log_id_from_disk, log_id_to_disk, membership_from_disk, membership_to_disk, TypeConfig,
};

type StoreResult<T> = Result<T, StorageError<u64>>;

/// The snapshot in force: its metadata and its data (a record list).
#[derive(Debug, Clone)]
struct CurrentSnapshot {
    meta: SnapshotMeta<u64, BasicNode>,
    data: Vec<u8>,
}

/// The state machine of one node.
#[derive(Debug)]
pub(crate) struct StateMachine {
    /// `__cluster_metadata-0`, where `raft-snapshot` lives.
    dir: PathBuf,
    /// The image after `last_applied`.
    image: MetadataImage,
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    /// Publishes every new image.
    publish: watch::Sender<ImageSnapshot>,
    /// The latest snapshot, shared with the snapshot builders.
    current: Arc<Mutex<Option<CurrentSnapshot>>>,
}

/// Applies `records` (encoded) to `image`, logging and skipping the ones
/// that do not decode or that the image refuses. Returns how many it skipped.
fn apply_records<'a>(
    image: &mut MetadataImage,
    records: impl IntoIterator<Item = &'a Vec<u8>>,
    at: u64,
) -> u64 {
    let mut skipped = 0;
    for (i, bytes) in records.into_iter().enumerate() {
        let outcome = MetadataRecord::decode(bytes)
            .map_err(|e| e.to_string())
            .and_then(|record| image.apply(&record).map_err(|e| e.to_string()));
        if let Err(reason) = outcome {
            skipped += 1;
            tracing::warn!(
                log_index = at,
                record = i,
                %reason,
                "skipping a metadata record the image refuses"
            );
        }
    }
    skipped
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

impl StateMachine {
    /// Opens the state machine from the snapshot in `dir`, if any. Returns
    /// it and the receiver side of its image channel.
    pub(crate) async fn open(
        dir: PathBuf,
    ) -> StoreResult<(StateMachine, watch::Receiver<ImageSnapshot>)> {
        let d = dir.clone();
        let stored = blocking(move || disk::read_snapshot(&d), read_snapshot_none).await?;
        let mut image = MetadataImage::new();
        let mut last_applied = None;
        let mut membership = StoredMembership::default();
        let mut current = None;
        if let Some(s) = stored {
            let Some(records) = disk::decode_record_list(&s.data) else {
                let e = std::io::Error::other("raft-snapshot holds a malformed record list");
                return Err(
                    StorageIOError::read_snapshot(None, openraft::AnyError::new(&e)).into(),
                );
            };
            apply_records(
                &mut image,
                &records,
                s.last_log.map(|l| l.index).unwrap_or(0),
            );
            last_applied = s.last_log.as_ref().map(log_id_from_disk);
            membership = StoredMembership::new(
                s.membership_log.as_ref().map(log_id_from_disk),
                membership_from_disk(&s.membership),
            );
            current = Some(CurrentSnapshot {
                meta: SnapshotMeta {
                    last_log_id: last_applied,
                    last_membership: membership.clone(),
                    snapshot_id: s.id,
                },
                data: s.data,
            });
        }
        let (publish, rx) = watch::channel(Arc::new(image.clone()));
        Ok((
            StateMachine {
                dir,
                image,
                last_applied,
                membership,
                publish,
                current: Arc::new(Mutex::new(current)),
            },
            rx,
        ))
    }

    fn set_current(&self, snapshot: CurrentSnapshot) {
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(snapshot);
    }
}

fn read_snapshot_none(e: openraft::AnyError) -> StorageIOError<u64> {
    StorageIOError::read_snapshot(None, e)
}

fn write_snapshot_none(e: openraft::AnyError) -> StorageIOError<u64> {
    StorageIOError::write_snapshot(None, e)
}

/// Writes `snapshot` to `dir` (blocking pool).
async fn persist(dir: PathBuf, snapshot: &CurrentSnapshot) -> StoreResult<()> {
    let stored = QuorumSnapshot {
        last_log: snapshot.meta.last_log_id.as_ref().map(log_id_to_disk),
        membership_log: snapshot
            .meta
            .last_membership
            .log_id()
            .as_ref()
            .map(log_id_to_disk),
        membership: membership_to_disk(snapshot.meta.last_membership.membership()),
        id: snapshot.meta.snapshot_id.clone(),
        data: snapshot.data.clone(),
    };
    blocking(
        move || disk::write_snapshot(&dir, &stored),
        write_snapshot_none,
    )
    .await
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> StoreResult<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>)> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StoreResult<Vec<()>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let mut replies = Vec::new();
        let mut changed = false;
        for entry in entries {
            self.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(batch) => {
                    apply_records(&mut self.image, &batch.records, entry.log_id.index);
                    changed = true;
                }
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m);
                }
            }
            replies.push(());
        }
        if changed {
            self.publish.send_replace(Arc::new(self.image.clone()));
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            dir: self.dir.clone(),
            records: self.image.to_records(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            current: Arc::clone(&self.current),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> StoreResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StoreResult<()> {
        let data = snapshot.into_inner();
        let Some(records) = disk::decode_record_list(&data) else {
            let e = std::io::Error::other("received a snapshot with a malformed record list");
            return Err(StorageIOError::read_snapshot(
                Some(meta.signature()),
                openraft::AnyError::new(&e),
            )
            .into());
        };
        let current = CurrentSnapshot {
            meta: meta.clone(),
            data,
        };
        persist(self.dir.clone(), &current).await?;
        let mut image = MetadataImage::new();
        apply_records(
            &mut image,
            &records,
            meta.last_log_id.map(|l| l.index).unwrap_or(0),
        );
        self.image = image;
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.set_current(current);
        self.publish.send_replace(Arc::new(self.image.clone()));
        tracing::info!(snapshot = %meta.snapshot_id, "installed a metadata snapshot from the leader");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StoreResult<Option<Snapshot<TypeConfig>>> {
        let current = self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        Ok(current.map(|c| Snapshot {
            meta: c.meta,
            snapshot: Box::new(Cursor::new(c.data)),
        }))
    }
}

/// Builds a snapshot of the image as it was when openraft asked for the
/// builder (the records are taken then; encoding and writing happen here).
pub(crate) struct SnapshotBuilder {
    dir: PathBuf,
    records: Vec<MetadataRecord>,
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    current: Arc<Mutex<Option<CurrentSnapshot>>>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> StoreResult<Snapshot<TypeConfig>> {
        let encoded: Vec<Vec<u8>> = self.records.iter().map(MetadataRecord::encode).collect();
        let data = disk::encode_record_list(&encoded);
        let id = match self.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, now_ms()),
            None => format!("empty-{}", now_ms()),
        };
        let snapshot = CurrentSnapshot {
            meta: SnapshotMeta {
                last_log_id: self.last_applied,
                last_membership: self.membership.clone(),
                snapshot_id: id,
            },
            data,
        };
        persist(self.dir.clone(), &snapshot).await?;
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(snapshot.clone());
        tracing::info!(
            snapshot = %snapshot.meta.snapshot_id,
            records = self.records.len(),
            "wrote a metadata snapshot"
        );
        Ok(Snapshot {
            meta: snapshot.meta,
            snapshot: Box::new(Cursor::new(snapshot.data)),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use wharf_coordinator::metadata::records::{
        ConfigRecord, PartitionChangeRecord, CONFIG_RESOURCE_BROKER,
    };
    use wharf_coordinator::metadata::ConfigResource;

    use super::*;

    #[test]
    fn records_that_do_not_decode_or_that_the_image_refuses_are_skipped_and_the_rest_applied() {
        let set = |v: &str| {
            MetadataRecord::Config(ConfigRecord {
                resource_type: CONFIG_RESOURCE_BROKER,
                resource_name: String::new(),
                name: "k".into(),
                value: Some(v.into()),
            })
            .encode()
        };
        let refused =
            MetadataRecord::PartitionChange(PartitionChangeRecord::new(uuid::Uuid::new_v4(), 0))
                .encode();
        let records = vec![set("1"), vec![0xff, 0x00, 0x13], refused, set("2")];
        let mut a = MetadataImage::new();
        let mut b = MetadataImage::new();
        assert_eq!(apply_records(&mut a, &records, 7), 2);
        assert_eq!(apply_records(&mut b, &records, 7), 2);
        assert_eq!(a, b, "skipping is deterministic");
        let configs = a.configs(&ConfigResource::Broker(String::new())).unwrap();
        assert_eq!(configs.get("k").map(String::as_str), Some("2"));
    }
}
