//! Reading an internal topic's partition from start to end on broker start
//! (`__consumer_offsets`, `__transaction_state`), with transactions
//! resolved: records of a transactional batch are held per producer until
//! that producer's marker, and passed on only when it is a COMMIT.

use std::collections::HashMap;

use wharf_protocol::batch;

use super::{BrokerError, Partition};

/// Most bytes read per step while replaying a partition.
const REPLAY_CHUNK: usize = 1 << 20;

/// A record held until its transaction's marker: (key, value).
pub type Held = (Vec<u8>, Option<Vec<u8>>);

/// Replays `partition` into `apply(key, value)`, in offset order, with
/// committed transactional records applied at their marker; calls
/// `on_marker(producer_id, commit)` for each transaction marker. Returns
/// the number of records applied and the records of transactions still
/// open at the end, by producer id. A bad batch ends the replay of the
/// partition with a warning.
pub fn replay_partition(
    name: &str,
    partition: &Partition,
    mut apply: impl FnMut(&[u8], Option<&[u8]>),
    mut on_marker: impl FnMut(i64, bool),
) -> Result<(usize, HashMap<i64, Vec<Held>>), BrokerError> {
    // To the log end, as Kafka's coordinators load: a new leader's high
    // watermark lags until its followers fetch again.
    let end = partition.log_end_offset();
    let mut offset = partition.log_start_offset();
    let mut count = 0usize;
    let mut open: HashMap<i64, Vec<Held>> = HashMap::new();
    while offset < end {
        let chunk = partition
            .read_uncommitted(offset, REPLAY_CHUNK, true)
            .map_err(|source| BrokerError::Storage {
                context: format!("replaying {name}-{}", partition.index),
                source,
            })?;
        if chunk.is_empty() {
            break;
        }
        let mut next = offset;
        for item in batch::batches(&chunk) {
            let (header, bytes) = match item {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(
                        partition = partition.index,
                        "stopping replay of {name} at a bad batch: {e}"
                    );
                    return Ok((count, open));
                }
            };
            next = header.next_offset();
            if header.is_control() {
                if let Some(marker) = batch::read_marker(bytes, &header) {
                    let held = open.remove(&header.producer_id()).unwrap_or_default();
                    if marker.commit {
                        for (key, value) in &held {
                            apply(key, value.as_deref());
                            count += 1;
                        }
                    }
                    on_marker(header.producer_id(), marker.commit);
                }
                continue;
            }
            let payload = match batch::records_payload(bytes, &header, 64 << 20) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(
                        partition = partition.index,
                        "skipping an unreadable batch of {name}: {e}"
                    );
                    continue;
                }
            };
            for record in batch::records(&header, &payload) {
                match record {
                    Ok(r) => {
                        let Some(key) = r.key else { continue };
                        if header.is_transactional() {
                            open.entry(header.producer_id())
                                .or_default()
                                .push((key.to_vec(), r.value.map(<[u8]>::to_vec)));
                        } else {
                            apply(key, r.value);
                            count += 1;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(
                            partition = partition.index,
                            "skipping bad records of {name}: {e}"
                        );
                        break;
                    }
                }
            }
        }
        if next <= offset {
            break;
        }
        offset = next;
    }
    Ok((count, open))
}
