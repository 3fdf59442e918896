//! [`LogConfig`]: the settings of one partition's log, from its topic's
//! configs and the broker's defaults.

/// Tuning for one log.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Roll to a new segment when an append would push the active one past this
    /// size. Capped at `i32::MAX`, since index positions are 32-bit.
    pub segment_bytes: u64,
    /// Bytes between sparse offset-index entries.
    pub index_interval_bytes: u64,
    /// Largest size of a segment's offset or time index; an append that
    /// would need more rolls the segment first (Kafka's segment.index.bytes).
    pub index_max_bytes: u64,
    /// Age in milliseconds after which a non-empty active segment rolls on
    /// the next append (Kafka's segment.ms, counted from the segment's
    /// creation).
    pub segment_ms: i64,
    /// Largest random amount each segment's segment.ms is shortened by, so
    /// that many partitions created together do not all roll at once
    /// (Kafka's segment.jitter.ms).
    pub segment_jitter_ms: i64,
    /// Largest decompressed records section accepted when validating a compressed batch.
    pub max_decompressed_batch_bytes: usize,
    /// Largest single batch an append may carry (Kafka's max.message.bytes).
    pub max_batch_bytes: u64,
    /// Segments whose newest record is older than this many milliseconds are
    /// deleted by [`Log::apply_retention`]; negative keeps them forever.
    pub retention_ms: i64,
    /// [`Log::apply_retention`] deletes the oldest segments while the log is
    /// larger than this; negative means no limit.
    pub retention_bytes: i64,
    /// Whether retention deletes segments at all (cleanup.policy has delete).
    pub delete_retention_enabled: bool,
    /// A compacted log (cleanup.policy has compact): records without a key
    /// are refused, as Kafka does, and [`Log::compact`] keeps only each
    /// key's latest record.
    pub compact: bool,
    /// Records younger than this many milliseconds are not compacted
    /// (Kafka's min.compaction.lag.ms).
    pub min_compaction_lag_ms: i64,
    /// How long compaction keeps a tombstone after it first reached it, in
    /// milliseconds (Kafka's delete.retention.ms; see `compaction`).
    pub delete_retention_ms: i64,
    /// Compaction skips a log whose dirty share of the cleanable bytes is
    /// not above this (Kafka's min.cleanable.dirty.ratio).
    pub min_cleanable_dirty_ratio: f64,
    /// Compaction cleans a log whose oldest dirty record is older than this
    /// many milliseconds, whatever its dirty ratio (Kafka's
    /// max.compaction.lag.ms); `i64::MAX` never forces it.
    pub max_compaction_lag_ms: i64,
    /// fsync after an append leaves this many records unflushed (Kafka's
    /// flush.messages); `u64::MAX` leaves flushing to the OS.
    pub flush_messages: u64,
    /// [`Log::flush_if_due`] fsyncs when unflushed data is older than this
    /// many milliseconds (Kafka's flush.ms).
    pub flush_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            index_interval_bytes: 4096,
            index_max_bytes: 10 << 20,
            segment_ms: 7 * 24 * 3600 * 1000,
            segment_jitter_ms: 0,
            max_decompressed_batch_bytes: 64 << 20,
            max_batch_bytes: u64::from(u32::MAX),
            retention_ms: -1,
            retention_bytes: -1,
            delete_retention_enabled: true,
            compact: false,
            min_compaction_lag_ms: 0,
            delete_retention_ms: 86_400_000,
            min_cleanable_dirty_ratio: 0.5,
            max_compaction_lag_ms: i64::MAX,
            flush_messages: u64::MAX,
            flush_ms: i64::MAX,
        }
    }
}

impl LogConfig {
    /// `segment_bytes`, capped so every position fits the index.
    pub(crate) fn segment_limit(&self) -> u64 {
        self.segment_bytes.min(i32::MAX as u64)
    }
}
