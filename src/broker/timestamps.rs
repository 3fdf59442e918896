//! Record timestamps on the produce path: `message.timestamp.type`
//! (LogAppendTime: the broker stamps each batch with its clock) and the
//! bounds `message.timestamp.before.max.ms` / `message.timestamp.after.max.ms`
//! (and the older `message.timestamp.difference.max.ms`, which bounds both
//! sides) on CreateTime records, whose violation is INVALID_TIMESTAMP.
//!
//! As in Kafka, the bounds apply to CreateTime topics only and records
//! without a timestamp (-1) pass. The upper bound is checked against each
//! batch's maxTimestamp, which is the largest of its records'; the lower
//! bound, off by default, needs the smallest, so every record is read when
//! it is set.

use std::collections::BTreeMap;

use wharf_protocol::batch::{self, BatchError, BatchHeader};

use super::configs::BrokerConfigs;

pub const TIMESTAMP_TYPE: &str = "message.timestamp.type";
pub const BEFORE_MAX_MS: &str = "message.timestamp.before.max.ms";
pub const AFTER_MAX_MS: &str = "message.timestamp.after.max.ms";
pub const DIFFERENCE_MAX_MS: &str = "message.timestamp.difference.max.ms";

/// A topic's timestamp settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampRules {
    /// The broker stamps batches with its clock (LogAppendTime).
    pub log_append_time: bool,
    /// Largest lag of a CreateTime record behind the broker's clock.
    pub before_max_ms: i64,
    /// Largest lead of a CreateTime record over the broker's clock.
    pub after_max_ms: i64,
}

/// Why a Produce's timestamps cannot be accepted.
#[derive(Debug, thiserror::Error)]
pub enum TimestampError {
    #[error("record timestamp {timestamp} is more than {limit_ms} ms {direction} the broker's time {now}{}", more_records(records.len()))]
    OutOfRange {
        /// The first out-of-range record's.
        timestamp: i64,
        now: i64,
        limit_ms: i64,
        direction: &'static str,
        /// Every out-of-range record: its index in the batch and why
        /// (KIP-467's per-record errors).
        records: Vec<(i32, String)>,
    },
    #[error(transparent)]
    Batch(#[from] BatchError),
}

/// ", and N more records" when a batch had others out of range.
fn more_records(count: usize) -> String {
    match count {
        0 | 1 => String::new(),
        2 => ", and 1 more record".to_string(),
        n => format!(", and {} more records", n - 1),
    }
}

impl TimestampRules {
    /// The rules of a topic with `overrides`, defaults from `broker`.
    pub fn for_topic(broker: &BrokerConfigs, overrides: &BTreeMap<String, String>) -> Self {
        let num = |name: &str| {
            broker
                .effective_named(name, overrides)
                .trim()
                .parse::<i64>()
                .ok()
                .unwrap_or(i64::MAX)
        };
        let difference = num(DIFFERENCE_MAX_MS);
        TimestampRules {
            log_append_time: broker.effective_named(TIMESTAMP_TYPE, overrides) == "LogAppendTime",
            before_max_ms: num(BEFORE_MAX_MS).min(difference),
            after_max_ms: num(AFTER_MAX_MS).min(difference),
        }
    }

    /// Checks the CreateTime bounds of, or stamps `now_ms` into, every batch
    /// of `records`. Returns the log append time when batches were stamped.
    pub fn apply(
        &self,
        records: &mut [u8],
        now_ms: i64,
        max_decompressed: usize,
    ) -> Result<Option<i64>, TimestampError> {
        let mut starts = Vec::new();
        let mut batches = batch::batches(records);
        loop {
            let start = batches.position();
            let Some(item) = batches.next() else { break };
            let (header, bytes) = item?;
            if !self.log_append_time {
                self.check(&header, bytes, now_ms, max_decompressed)?;
            }
            starts.push(start);
        }
        if !self.log_append_time {
            return Ok(None);
        }
        for start in starts {
            let bytes = records.get_mut(start..).ok_or(BatchError::Truncated {
                needed: start,
                available: 0,
            })?;
            batch::set_log_append_time(bytes, now_ms)?;
        }
        Ok(Some(now_ms))
    }

    fn check(
        &self,
        header: &BatchHeader,
        bytes: &[u8],
        now_ms: i64,
        max_decompressed: usize,
    ) -> Result<(), TimestampError> {
        let too_new = |ts: i64| ts >= 0 && ts.saturating_sub(now_ms) > self.after_max_ms;
        let too_old = |ts: i64| ts >= 0 && now_ms.saturating_sub(ts) > self.before_max_ms;
        // Without a lower bound the batch's max timestamp decides, with no
        // need to read its records.
        if self.before_max_ms == i64::MAX && !too_new(header.max_timestamp()) {
            return Ok(());
        }
        let limit = |ts: i64| {
            if too_old(ts) {
                (self.before_max_ms, "behind")
            } else {
                (self.after_max_ms, "ahead of")
            }
        };
        let mut bad: Vec<(i32, String)> = Vec::new();
        let mut first = None::<i64>;
        let mut index = 0i32;
        batch::for_each_record(bytes, header, max_decompressed, |record| {
            let ts = record.timestamp;
            if too_old(ts) || too_new(ts) {
                first.get_or_insert(ts);
                let (limit_ms, direction) = limit(ts);
                bad.push((
                    index,
                    format!("timestamp {ts} is more than {limit_ms} ms {direction} the broker's time {now_ms}"),
                ));
            }
            index = index.saturating_add(1);
            Ok(())
        })?;
        match first {
            Some(timestamp) => {
                let (limit_ms, direction) = limit(timestamp);
                Err(TimestampError::OutOfRange {
                    timestamp,
                    now: now_ms,
                    limit_ms,
                    direction,
                    records: bad,
                })
            }
            None => Ok(()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use wharf_protocol::batch::{build_batch, TimestampType};
    use wharf_protocol::compression::Compression;

    fn rules(log_append_time: bool, before: i64, after: i64) -> TimestampRules {
        TimestampRules {
            log_append_time,
            before_max_ms: before,
            after_max_ms: after,
        }
    }

    fn two_batches(ts: [i64; 2], codec: Compression) -> Vec<u8> {
        let mut out = Vec::new();
        for t in ts {
            let records = [
                (Some(&b"k"[..]), Some(&b"v"[..]), t),
                (None, Some(&b"w"[..]), t - 1),
            ];
            out.extend(build_batch(0, &records, codec).unwrap());
        }
        out
    }

    #[test]
    fn log_append_time_stamps_every_batch_with_the_broker_time() {
        let mut records = two_batches([10, 20], Compression::Lz4);
        let stamped = rules(true, 5, 5)
            .apply(&mut records, 1_000, 1 << 20)
            .unwrap();
        assert_eq!(stamped, Some(1_000));
        for item in batch::batches(&records) {
            let (header, bytes) = item.unwrap();
            batch::validate(bytes, 1 << 20).unwrap();
            assert_eq!(header.timestamp_type(), TimestampType::LogAppendTime);
            assert_eq!(header.max_timestamp(), 1_000);
        }
    }

    #[test]
    fn create_time_records_outside_the_bounds_are_refused() {
        let now = 1_000_000;
        let ok = rules(false, 1_000, 1_000);
        let mut fine = two_batches([now - 900, now + 900], Compression::None);
        assert_eq!(ok.apply(&mut fine, now, 1 << 20).unwrap(), None);
        let mut future = two_batches([now, now + 1_002], Compression::None);
        let err = ok.apply(&mut future, now, 1 << 20).unwrap_err();
        assert!(err.to_string().contains("ahead of"), "{err}");
        // The second record of the first batch is 1 001 ms old, although
        // the batch's first and largest timestamps are within bounds.
        let mut past = two_batches([now - 1_000, now], Compression::Gzip);
        let err = ok.apply(&mut past, now, 1 << 20).unwrap_err();
        assert!(err.to_string().contains("behind"), "{err}");
        // Records without a timestamp pass.
        let mut none = two_batches([-1, 0], Compression::None);
        let lenient = rules(false, i64::MAX, 10);
        assert!(lenient.apply(&mut none, now, 1 << 20).is_ok());
    }

    #[test]
    fn difference_max_bounds_both_sides_when_tighter() {
        let broker = BrokerConfigs::default();
        let mut overrides = BTreeMap::new();
        overrides.insert(DIFFERENCE_MAX_MS.to_string(), "500".to_string());
        overrides.insert(AFTER_MAX_MS.to_string(), "100".to_string());
        let r = TimestampRules::for_topic(&broker, &overrides);
        assert_eq!(r, rules(false, 500, 100));
        let defaults = TimestampRules::for_topic(&broker, &BTreeMap::new());
        assert_eq!(defaults, rules(false, i64::MAX, 3_600_000));
        overrides.insert(TIMESTAMP_TYPE.to_string(), "LogAppendTime".to_string());
        assert!(TimestampRules::for_topic(&broker, &overrides).log_append_time);
    }
}
