//! DescribeLogDirs: the log directory of this broker, with the size and
//! offset lag of each partition replica it holds there, and (v4) the
//! volume's total and usable bytes. Wharf keeps every partition in one
//! data directory, so the answer has one result.
//!
//! The offset lag is Kafka's: how far the replica's log end is below its
//! high watermark (0 on a leader and on a follower, whose high watermark
//! never passes its log end; Kafka reports lag for a future replica being
//! moved between directories, which Wharf does not do).

use std::path::Path;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{HandlerResult, Request};

pub const MIN_VERSION: i16 = 1;
pub const MAX_VERSION: i16 = 4;

/// Kafka's `DescribeLogDirsResponse.UNKNOWN_VOLUME_BYTES`.
const UNKNOWN_VOLUME_BYTES: i64 = -1;

/// The volume's (total, usable) bytes, as `df` would show them.
fn volume_bytes(dir: &Path) -> (i64, i64) {
    match rustix::fs::statvfs(dir) {
        Ok(s) => {
            let bytes =
                |blocks: u64| i64::try_from(blocks.saturating_mul(s.f_frsize)).unwrap_or(i64::MAX);
            (bytes(s.f_blocks), bytes(s.f_bavail))
        }
        Err(e) => {
            tracing::warn!(dir = %dir.display(), "cannot read the volume's size: {e}");
            (UNKNOWN_VOLUME_BYTES, UNKNOWN_VOLUME_BYTES)
        }
    }
}

pub async fn handle(request: Request) -> HandlerResult {
    let body: DescribeLogDirsRequest = request.decode()?;
    let dir = request.broker.settings.data_dir.clone();
    let shown = std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone());
    let mut result = DescribeLogDirsResult::default();
    result.log_dir = StrBytes::from_string(shown.display().to_string());
    let topics = request.broker.topics();
    let wanted = |name: &str, index: i32| match &body.topics {
        None => true,
        Some(asked) => asked
            .iter()
            .any(|t| t.topic.0.as_str() == name && t.partitions.contains(&index)),
    };
    for topic in &topics {
        let mut out = DescribeLogDirsTopic::default();
        for partition in topic
            .partitions
            .iter()
            .filter(|p| wanted(&topic.name, p.index))
        {
            let mut p = DescribeLogDirsPartition::default();
            p.partition_index = partition.index;
            p.partition_size = i64::try_from(partition.size_bytes()).unwrap_or(i64::MAX);
            p.offset_lag = (partition.high_watermark() - partition.log_end_offset()).max(0);
            p.is_future_key = false;
            out.partitions.push(p);
        }
        if !out.partitions.is_empty() {
            out.name = TopicName(StrBytes::from_string(topic.name.to_string()));
            result.topics.push(out);
        }
    }
    if request.api_version >= 4 {
        let (total, usable) = tokio::task::spawn_blocking(move || volume_bytes(&dir))
            .await
            .unwrap_or((UNKNOWN_VOLUME_BYTES, UNKNOWN_VOLUME_BYTES));
        result.total_bytes = total;
        result.usable_bytes = usable;
    }
    let mut response = DescribeLogDirsResponse::default();
    response.results.push(result);
    request.respond(&response)
}
