//! Metrics read at scrape time, so the request path pays nothing for them:
//! the broker's partitions and consumer groups, and the process's figures
//! from `/proc/self`.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, NoLabelSet};
use prometheus_client::metrics::MetricType;

use crate::broker::Broker;

/// One labelled value of a gauge.
type Sample<V> = (Vec<(&'static str, String)>, V);

/// Writes a gauge family: its descriptor, then one line per sample.
fn gauge<V: EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: &[Sample<V>],
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in samples {
        metric.encode_family(labels)?.encode_gauge(value)?;
    }
    Ok(())
}

fn partition_labels(topic: &str, partition: i32) -> Vec<(&'static str, String)> {
    vec![
        ("topic", topic.to_string()),
        ("partition", partition.to_string()),
    ]
}

/// The broker's partitions and consumer groups, read when scraped.
#[derive(Debug)]
pub struct BrokerCollector {
    broker: Arc<Broker>,
}

impl BrokerCollector {
    pub fn new(broker: Arc<Broker>) -> Self {
        BrokerCollector { broker }
    }

    /// (committed offset, lag) of each partition a group this broker
    /// coordinates has committed an offset for, where this broker hosts the
    /// partition (the lag is the high watermark less the committed offset).
    fn group_lag(&self) -> Vec<Sample<(i64, i64)>> {
        let broker = &self.broker;
        let Ok(groups) = broker.groups.list_groups(&[]) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (group, _, _) in groups {
            if broker.group_coordinator_error(&group).is_some() {
                continue;
            }
            let Ok(committed) = broker.groups.fetch_offsets(&group, None) else {
                continue;
            };
            for (topic_name, partitions) in committed {
                let Some(topic) = broker.topic(&topic_name) else {
                    continue;
                };
                for (index, offset) in partitions {
                    let (Some(offset), Some(partition)) = (offset, topic.partition(index)) else {
                        continue;
                    };
                    let lag = partition
                        .high_watermark()
                        .saturating_sub(offset.offset)
                        .max(0);
                    let mut labels = partition_labels(&topic_name, index);
                    labels.insert(0, ("group", group.clone()));
                    out.push((labels, (offset.offset, lag)));
                }
            }
        }
        out
    }
}

impl Collector for BrokerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut end = Vec::new();
        let mut start = Vec::new();
        let mut size = Vec::new();
        let mut under_replicated = 0i64;
        for topic in self.broker.topics() {
            for partition in &topic.partitions {
                let labels = partition_labels(&topic.name, partition.index);
                end.push((labels.clone(), partition.log_end_offset()));
                start.push((labels.clone(), partition.log_start_offset()));
                size.push((
                    labels,
                    i64::try_from(partition.size_bytes()).unwrap_or(i64::MAX),
                ));
                if partition.under_replicated() {
                    under_replicated += 1;
                }
            }
        }
        gauge(
            &mut encoder,
            "wharf_partition_log_end_offset",
            "The offset the next record appended to the partition gets",
            &end,
        )?;
        gauge(
            &mut encoder,
            "wharf_partition_log_start_offset",
            "The first offset still in the partition's log",
            &start,
        )?;
        gauge(
            &mut encoder,
            "wharf_partition_size_bytes",
            "Bytes in the partition's segment files",
            &size,
        )?;
        gauge(
            &mut encoder,
            "wharf_under_replicated_partitions",
            "Partitions this broker leads whose in-sync replicas are fewer than their replicas",
            &[(Vec::new(), under_replicated)],
        )?;
        let groups = self.group_lag();
        let committed: Vec<_> = groups.iter().map(|(l, (c, _))| (l.clone(), *c)).collect();
        let lag: Vec<_> = groups.into_iter().map(|(l, (_, lag))| (l, lag)).collect();
        gauge(
            &mut encoder,
            "wharf_consumer_group_committed_offset",
            "The offset a consumer group this broker coordinates has committed for a partition",
            &committed,
        )?;
        gauge(
            &mut encoder,
            "wharf_consumer_group_lag",
            "Records of a partition past a consumer group's committed offset (high watermark less committed offset)",
            &lag,
        )?;
        let (sessions, partitions) = self.broker.fetch_sessions.with(|cache, _| {
            (
                i64::try_from(cache.len()).unwrap_or(i64::MAX),
                i64::try_from(cache.partitions()).unwrap_or(i64::MAX),
            )
        });
        gauge(
            &mut encoder,
            "wharf_fetch_sessions",
            "Incremental fetch sessions (KIP-227) held in the broker's cache",
            &[(Vec::new(), sessions)],
        )?;
        gauge(
            &mut encoder,
            "wharf_fetch_session_partitions",
            "Partitions held by all incremental fetch sessions",
            &[(Vec::new(), partitions)],
        )?;
        Ok(())
    }
}

/// The process's memory, file descriptors, CPU time and start time, read
/// from `/proc/self` when scraped (names as the Prometheus clients of other
/// languages give them). Figures that cannot be read are left out.
#[derive(Debug)]
pub struct ProcessCollector;

/// What `/proc/self/stat` tells.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Stat {
    cpu_seconds: f64,
    threads: i64,
    /// Clock ticks after boot when the process started.
    start_ticks: u64,
}

/// Parses `/proc/self/stat` (its second field, the command name in
/// parentheses, may hold spaces and parentheses itself).
fn parse_stat(text: &str, ticks_per_second: u64) -> Option<Stat> {
    let (_, rest) = text.rsplit_once(')')?;
    // Fields from the third (state) on: utime is the 14th field.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n.checked_sub(3)?)?.parse::<u64>().ok();
    let ticks = ticks_per_second.max(1) as f64;
    Some(Stat {
        cpu_seconds: (field(14)? + field(15)?) as f64 / ticks,
        threads: i64::try_from(field(20)?).ok()?,
        start_ticks: field(22)?,
    })
}

/// A `kB` figure of `/proc/self/status`, in bytes.
fn status_bytes(status: &str, key: &str) -> Option<i64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kib: i64 = line
        .get(key.len()..)?
        .trim_start_matches(':')
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

/// Seconds since the epoch at boot, from `/proc/stat`.
fn boot_time(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        for (name, key, help) in [
            (
                "process_resident_memory_bytes",
                "VmRSS",
                "Resident memory size in bytes",
            ),
            (
                "process_virtual_memory_bytes",
                "VmSize",
                "Virtual memory size in bytes",
            ),
        ] {
            if let Some(bytes) = status_bytes(&status, key) {
                gauge(&mut encoder, name, help, &[(Vec::new(), bytes)])?;
            }
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            // The directory's own descriptor, open while it is read, is
            // one of the entries.
            let open = i64::try_from(dir.count())
                .unwrap_or(i64::MAX)
                .saturating_sub(1);
            gauge(
                &mut encoder,
                "process_open_fds",
                "Open file descriptors",
                &[(Vec::new(), open)],
            )?;
        }
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        if let Some(max) = limit.current.and_then(|m| i64::try_from(m).ok()) {
            gauge(
                &mut encoder,
                "process_max_fds",
                "The limit of open file descriptors",
                &[(Vec::new(), max)],
            )?;
        }
        let ticks = rustix::param::clock_ticks_per_second();
        let stat = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| parse_stat(&s, ticks));
        if let Some(stat) = stat {
            let mut cpu = encoder.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time spent, in seconds",
                None,
                MetricType::Counter,
            )?;
            cpu.encode_counter::<NoLabelSet, _, f64>(&stat.cpu_seconds, None)?;
            gauge(
                &mut encoder,
                "process_threads",
                "Threads of the process",
                &[(Vec::new(), stat.threads)],
            )?;
            let boot = std::fs::read_to_string("/proc/stat")
                .ok()
                .and_then(|s| boot_time(&s));
            if let Some(boot) = boot {
                let start = boot as f64 + stat.start_ticks as f64 / ticks.max(1) as f64;
                gauge(
                    &mut encoder,
                    "process_start_time_seconds",
                    "Start time of the process since the Unix epoch, in seconds",
                    &[(Vec::new(), start)],
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat_with_a_command_name_holding_spaces() {
        let text = "4242 (wharf (x) y) S 1 4242 4242 0 -1 4194560 2000 0 0 0 \
                    250 50 0 0 20 0 7 0 12345 1000000 500 18446744073709551615";
        let stat = parse_stat(text, 100).unwrap();
        assert_eq!(stat.cpu_seconds, 3.0);
        assert_eq!(stat.threads, 7);
        assert_eq!(stat.start_ticks, 12345);
        assert_eq!(parse_stat("garbage", 100), None);
    }

    #[test]
    fn reads_kilobyte_figures_of_proc_status() {
        let status = "Name:\twharf\nVmSize:\t  204800 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(status_bytes(status, "VmRSS"), Some(10 * 1024 * 1024));
        assert_eq!(status_bytes(status, "VmSize"), Some(200 * 1024 * 1024));
        assert_eq!(status_bytes(status, "VmSwap"), None);
        assert_eq!(
            boot_time("cpu 1 2 3\nbtime 1700000000\n"),
            Some(1_700_000_000)
        );
    }

    #[test]
    fn process_figures_of_this_process_are_exported() {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(ProcessCollector));
        let text = super::super::render(&registry).unwrap();
        for name in [
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "process_cpu_seconds_total ",
        ] {
            assert!(text.contains(name), "{name} missing from {text}");
        }
    }
}
