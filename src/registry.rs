//! The one table of supported APIs: key -> version range -> handler.
//! ApiVersions answers from it and the connection dispatches through it;
//! nothing else lists APIs.

use std::future::Future;
use std::pin::Pin;

use kafka_protocol::messages::ApiKey;

use crate::handlers::{self, HandlerResult, Request};

pub type HandlerFuture = Pin<Box<dyn Future<Output = HandlerResult> + Send>>;

/// One supported API.
#[derive(Debug)]
pub struct Api {
    pub key: ApiKey,
    /// Versions listed in ApiVersions.
    pub min_version: i16,
    pub max_version: i16,
    pub handle: fn(Request) -> HandlerFuture,
}

impl Api {
    pub fn supports(&self, version: i16) -> bool {
        (self.min_version..=self.max_version).contains(&version)
    }
}

macro_rules! api {
    ($key:ident, $module:ident) => {
        Api {
            key: ApiKey::$key,
            min_version: handlers::$module::MIN_VERSION,
            max_version: handlers::$module::MAX_VERSION,
            handle: |request| Box::pin(handlers::$module::handle(request)),
        }
    };
}

/// Every API this broker serves, in key order.
pub static APIS: &[Api] = &[
    api!(Produce, produce),
    api!(Fetch, fetch),
    api!(ListOffsets, list_offsets),
    api!(Metadata, metadata),
    api!(OffsetCommit, offset_commit),
    api!(OffsetFetch, offset_fetch),
    api!(FindCoordinator, find_coordinator),
    api!(JoinGroup, join_group),
    api!(Heartbeat, heartbeat),
    api!(LeaveGroup, leave_group),
    api!(SyncGroup, sync_group),
    api!(DescribeGroups, describe_groups),
    api!(ListGroups, list_groups),
    api!(SaslHandshake, sasl_handshake),
    api!(ApiVersions, api_versions),
    api!(CreateTopics, create_topics),
    api!(DeleteTopics, delete_topics),
    api!(DeleteRecords, delete_records),
    api!(InitProducerId, init_producer_id),
    api!(AddPartitionsToTxn, add_partitions_to_txn),
    api!(AddOffsetsToTxn, add_offsets_to_txn),
    api!(EndTxn, end_txn),
    api!(WriteTxnMarkers, write_txn_markers),
    api!(TxnOffsetCommit, txn_offset_commit),
    api!(DescribeAcls, describe_acls),
    api!(CreateAcls, create_acls),
    api!(DeleteAcls, delete_acls),
    api!(DescribeConfigs, describe_configs),
    api!(AlterConfigs, alter_configs),
    api!(DescribeLogDirs, describe_log_dirs),
    api!(SaslAuthenticate, sasl_authenticate),
    api!(CreatePartitions, create_partitions),
    api!(DeleteGroups, delete_groups),
    api!(ElectLeaders, elect_leaders),
    api!(IncrementalAlterConfigs, incremental_alter_configs),
    api!(AlterPartitionReassignments, alter_partition_reassignments),
    api!(ListPartitionReassignments, list_partition_reassignments),
    api!(OffsetDelete, offset_delete),
    api!(
        DescribeUserScramCredentials,
        describe_user_scram_credentials
    ),
    api!(AlterUserScramCredentials, alter_user_scram_credentials),
    api!(DescribeQuorum, describe_quorum),
    api!(UpdateFeatures, update_features),
    api!(DescribeCluster, describe_cluster),
    api!(DescribeProducers, describe_producers),
    api!(DescribeTransactions, describe_transactions),
    api!(ListTransactions, list_transactions),
    api!(ConsumerGroupHeartbeat, consumer_group_heartbeat),
    api!(ConsumerGroupDescribe, consumer_group_describe),
    api!(ListConfigResources, list_config_resources),
    api!(DescribeTopicPartitions, describe_topic_partitions),
];

pub fn lookup(key: ApiKey) -> Option<&'static Api> {
    APIS.iter().find(|api| api.key == key)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn lists_each_api_once_in_key_order_within_codec_ranges() {
        let keys: Vec<i16> = APIS.iter().map(|a| a.key as i16).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(keys, sorted);
        for api in APIS {
            let codec = api.key.valid_versions();
            assert!(api.min_version <= api.max_version, "{:?}", api.key);
            // Versions the codec cannot decode must be handled by hand;
            // only Produce v0-v2 are, and only to refuse them.
            if api.key != ApiKey::Produce {
                assert!(api.min_version >= codec.min, "{:?}", api.key);
            }
            assert_eq!(api.max_version, request_codec_max(api.key), "{:?}", api.key);
        }
    }

    /// The newest version the request codec decodes. `ApiKey::valid_versions`
    /// lists OffsetCommit and OffsetFetch up to v10 (topic ids), but their
    /// request types stop at v9, so v9 is the most a broker can serve.
    /// Likewise InitProducerId: listed to v6 (KIP-939), decoded to v5.
    /// EndTxn v5 means KIP-890's epoch bump per transaction (transaction
    /// version 2), which Wharf does not do: it stops at v4.
    fn request_codec_max(key: ApiKey) -> i16 {
        use kafka_protocol::messages::{
            InitProducerIdRequest, OffsetCommitRequest, OffsetFetchRequest,
        };
        use kafka_protocol::protocol::Message;
        match key {
            ApiKey::InitProducerId => InitProducerIdRequest::VERSIONS.max,
            ApiKey::EndTxn => 4,
            ApiKey::OffsetCommit => OffsetCommitRequest::VERSIONS.max,
            ApiKey::OffsetFetch => OffsetFetchRequest::VERSIONS.max,
            other => other.valid_versions().max,
        }
    }

    #[test]
    fn lists_produce_from_v0_so_librdkafka_keeps_compression() {
        let produce = lookup(ApiKey::Produce).unwrap();
        assert_eq!(produce.min_version, 0);
        assert!(lookup(ApiKey::JoinGroup).is_some());
    }
}
