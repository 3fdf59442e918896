//! Walks the ApiVersions answer: every API advertised, at its lowest and
//! highest version, gets a well-formed request (kafka-protocol's default,
//! with the few fields set that a request needs to be answered), and must
//! be answered on an open connection, with a response the client codec
//! decodes whole and no UNSUPPORTED_VERSION anywhere in it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fmt::Debug;

use bytes::{BufMut, BytesMut};
use common::{Client, TestBroker};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

const UNSUPPORTED_VERSION: i16 = 35;

fn header(key: ApiKey, version: i16, correlation_id: i32) -> BytesMut {
    let mut h = RequestHeader::default();
    h.request_api_key = key as i16;
    h.request_api_version = version;
    h.correlation_id = correlation_id;
    h.client_id = Some(StrBytes::from_static_str("wharf-walk"));
    let mut frame = BytesMut::new();
    h.encode(&mut frame, key.request_header_version(version))
        .unwrap();
    frame
}

fn response_header_version(key: ApiKey, version: i16) -> i16 {
    if key == ApiKey::ApiVersions {
        0
    } else {
        key.response_header_version(version)
    }
}

/// Sends `frame` (header included) and returns the body of the answer.
fn round_trip(
    client: &mut Client,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    frame: &[u8],
) -> Result<bytes::Bytes, String> {
    client.send_frame(frame);
    let mut body = client
        .read_frame()
        .ok_or_else(|| "the broker closed the connection".to_string())?;
    let h = ResponseHeader::decode(&mut body, response_header_version(key, version))
        .map_err(|e| format!("response header: {e}"))?;
    if h.correlation_id != correlation_id {
        return Err(format!(
            "correlation id {} != {correlation_id}",
            h.correlation_id
        ));
    }
    Ok(body)
}

/// One request and its decoded answer, as Debug text.
fn exchange<Req: Encodable, Resp: Decodable + Debug>(
    client: &mut Client,
    key: ApiKey,
    version: i16,
    request: &Req,
) -> Result<String, String> {
    let correlation_id = 1000 + i32::from(version);
    let mut frame = header(key, version, correlation_id);
    request
        .encode(&mut frame, version)
        .map_err(|e| format!("the test could not encode the request: {e}"))?;
    let mut body = round_trip(client, key, version, correlation_id, &frame)?;
    let response = Resp::decode(&mut body, version).map_err(|e| format!("response body: {e}"))?;
    if !body.is_empty() {
        return Err(format!("{} bytes left after the response", body.len()));
    }
    Ok(format!("{response:?}"))
}

/// Produce v0-v2 (message formats v0/v1), which the codec does not encode:
/// acks, timeout and an empty topic array, by hand. The answer is an empty
/// topic array, then (v1 and later) the throttle time.
fn legacy_produce(client: &mut Client, version: i16) -> Result<String, String> {
    let correlation_id = 2000 + i32::from(version);
    let mut frame = header(ApiKey::Produce, version, correlation_id);
    frame.put_i16(-1);
    frame.put_i32(1000);
    frame.put_i32(0);
    let body = round_trip(client, ApiKey::Produce, version, correlation_id, &frame)?;
    let expected: &[u8] = if version >= 1 {
        &[0, 0, 0, 0, 0, 0, 0, 0]
    } else {
        &[0, 0, 0, 0]
    };
    if body.as_ref() != expected {
        return Err(format!("unexpected Produce v{version} answer {body:?}"));
    }
    Ok(String::new())
}

/// The request the walk sends to `key` at `version`.
fn walk_one(client: &mut Client, key: ApiKey, v: i16) -> Result<String, String> {
    macro_rules! plain {
        ($req:ty, $resp:ty) => {
            exchange::<$req, $resp>(client, key, v, &<$req>::default())
        };
    }
    match key {
        ApiKey::Produce if v < 3 => legacy_produce(client, v),
        ApiKey::Produce => {
            let mut r = ProduceRequest::default();
            // acks=0 would get no answer at all.
            r.acks = -1;
            r.timeout_ms = 1000;
            exchange::<_, ProduceResponse>(client, key, v, &r)
        }
        ApiKey::Fetch => plain!(FetchRequest, FetchResponse),
        ApiKey::ListOffsets => {
            let mut r = ListOffsetsRequest::default();
            r.replica_id = (-1).into();
            exchange::<_, ListOffsetsResponse>(client, key, v, &r)
        }
        ApiKey::Metadata => {
            let mut r = MetadataRequest::default();
            // An empty list: no topics (all of them at v0).
            r.topics = Some(Vec::new());
            exchange::<_, MetadataResponse>(client, key, v, &r)
        }
        ApiKey::OffsetCommit => plain!(OffsetCommitRequest, OffsetCommitResponse),
        ApiKey::OffsetFetch => {
            let mut r = OffsetFetchRequest::default();
            if v < 8 {
                r.topics = Some(Vec::new());
            }
            exchange::<_, OffsetFetchResponse>(client, key, v, &r)
        }
        ApiKey::FindCoordinator => {
            let mut r = FindCoordinatorRequest::default();
            if v >= 4 {
                r.coordinator_keys = vec![StrBytes::from_static_str("walk")];
            } else {
                r.key = StrBytes::from_static_str("walk");
            }
            exchange::<_, FindCoordinatorResponse>(client, key, v, &r)
        }
        ApiKey::JoinGroup => {
            let mut r = JoinGroupRequest::default();
            r.session_timeout_ms = 10_000;
            r.rebalance_timeout_ms = 10_000;
            r.protocol_type = StrBytes::from_static_str("consumer");
            exchange::<_, JoinGroupResponse>(client, key, v, &r)
        }
        ApiKey::Heartbeat => plain!(HeartbeatRequest, HeartbeatResponse),
        ApiKey::LeaveGroup => plain!(LeaveGroupRequest, LeaveGroupResponse),
        ApiKey::SyncGroup => plain!(SyncGroupRequest, SyncGroupResponse),
        ApiKey::DescribeGroups => plain!(DescribeGroupsRequest, DescribeGroupsResponse),
        ApiKey::ListGroups => plain!(ListGroupsRequest, ListGroupsResponse),
        ApiKey::ApiVersions => {
            let mut r = ApiVersionsRequest::default();
            r.client_software_name = StrBytes::from_static_str("walk");
            r.client_software_version = StrBytes::from_static_str("1");
            exchange::<_, ApiVersionsResponse>(client, key, v, &r)
        }
        ApiKey::CreateTopics => plain!(CreateTopicsRequest, CreateTopicsResponse),
        ApiKey::DeleteTopics => plain!(DeleteTopicsRequest, DeleteTopicsResponse),
        ApiKey::DeleteRecords => plain!(DeleteRecordsRequest, DeleteRecordsResponse),
        ApiKey::InitProducerId => {
            let mut r = InitProducerIdRequest::default();
            r.transaction_timeout_ms = 60_000;
            exchange::<_, InitProducerIdResponse>(client, key, v, &r)
        }
        ApiKey::AddPartitionsToTxn => {
            plain!(AddPartitionsToTxnRequest, AddPartitionsToTxnResponse)
        }
        ApiKey::AddOffsetsToTxn => plain!(AddOffsetsToTxnRequest, AddOffsetsToTxnResponse),
        ApiKey::EndTxn => plain!(EndTxnRequest, EndTxnResponse),
        ApiKey::WriteTxnMarkers => plain!(WriteTxnMarkersRequest, WriteTxnMarkersResponse),
        ApiKey::TxnOffsetCommit => plain!(TxnOffsetCommitRequest, TxnOffsetCommitResponse),
        ApiKey::DescribeAcls => plain!(DescribeAclsRequest, DescribeAclsResponse),
        ApiKey::CreateAcls => plain!(CreateAclsRequest, CreateAclsResponse),
        ApiKey::DeleteAcls => plain!(DeleteAclsRequest, DeleteAclsResponse),
        ApiKey::DescribeConfigs => plain!(DescribeConfigsRequest, DescribeConfigsResponse),
        ApiKey::AlterConfigs => plain!(AlterConfigsRequest, AlterConfigsResponse),
        ApiKey::DescribeLogDirs => plain!(DescribeLogDirsRequest, DescribeLogDirsResponse),
        ApiKey::CreatePartitions => plain!(CreatePartitionsRequest, CreatePartitionsResponse),
        ApiKey::DeleteGroups => plain!(DeleteGroupsRequest, DeleteGroupsResponse),
        ApiKey::ElectLeaders => {
            let mut r = ElectLeadersRequest::default();
            r.topic_partitions = Some(Vec::new());
            exchange::<_, ElectLeadersResponse>(client, key, v, &r)
        }
        ApiKey::IncrementalAlterConfigs => {
            plain!(
                IncrementalAlterConfigsRequest,
                IncrementalAlterConfigsResponse
            )
        }
        ApiKey::AlterPartitionReassignments => plain!(
            AlterPartitionReassignmentsRequest,
            AlterPartitionReassignmentsResponse
        ),
        ApiKey::ListPartitionReassignments => plain!(
            ListPartitionReassignmentsRequest,
            ListPartitionReassignmentsResponse
        ),
        ApiKey::OffsetDelete => plain!(OffsetDeleteRequest, OffsetDeleteResponse),
        ApiKey::DescribeQuorum => plain!(DescribeQuorumRequest, DescribeQuorumResponse),
        ApiKey::DescribeUserScramCredentials => plain!(
            DescribeUserScramCredentialsRequest,
            DescribeUserScramCredentialsResponse
        ),
        ApiKey::AlterUserScramCredentials => plain!(
            AlterUserScramCredentialsRequest,
            AlterUserScramCredentialsResponse
        ),
        ApiKey::DescribeCluster => plain!(DescribeClusterRequest, DescribeClusterResponse),
        ApiKey::DescribeProducers => {
            plain!(DescribeProducersRequest, DescribeProducersResponse)
        }
        ApiKey::DescribeTransactions => {
            plain!(DescribeTransactionsRequest, DescribeTransactionsResponse)
        }
        ApiKey::ListTransactions => plain!(ListTransactionsRequest, ListTransactionsResponse),
        // On a PLAINTEXT listener both answer ILLEGAL_SASL_STATE (34).
        ApiKey::SaslHandshake => plain!(SaslHandshakeRequest, SaslHandshakeResponse),
        ApiKey::SaslAuthenticate => {
            plain!(SaslAuthenticateRequest, SaslAuthenticateResponse)
        }
        ApiKey::DescribeTopicPartitions => plain!(
            DescribeTopicPartitionsRequest,
            DescribeTopicPartitionsResponse
        ),
        ApiKey::UpdateFeatures => plain!(UpdateFeaturesRequest, UpdateFeaturesResponse),
        ApiKey::ListConfigResources => {
            plain!(ListConfigResourcesRequest, ListConfigResourcesResponse)
        }
        // A default heartbeat (no group id) answers INVALID_REQUEST.
        ApiKey::ConsumerGroupHeartbeat => plain!(
            ConsumerGroupHeartbeatRequest,
            ConsumerGroupHeartbeatResponse
        ),
        ApiKey::ConsumerGroupDescribe => {
            plain!(ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse)
        }
        other => Err(format!(
            "advertised, but this walk has no request for {other:?}: add one"
        )),
    }
}

/// Whether a response's Debug text holds an `error_code` of 35 anywhere
/// (top level or any partition, topic or resource).
fn names_unsupported_version(text: &str) -> bool {
    let field = format!("error_code: {UNSUPPORTED_VERSION}");
    text.match_indices(&field)
        .any(|(at, _)| !text[at + field.len()..].starts_with(|c: char| c.is_ascii_digit()))
}

#[test]
fn the_walk_sees_unsupported_version_anywhere_in_an_answer() {
    let mut r = FetchResponse::default();
    assert!(!names_unsupported_version(&format!("{r:?}")));
    r.error_code = 350;
    assert!(!names_unsupported_version(&format!("{r:?}")));
    let mut p = fetch_response::PartitionData::default();
    p.error_code = UNSUPPORTED_VERSION;
    let mut t = fetch_response::FetchableTopicResponse::default();
    t.partitions = vec![p];
    r.responses = vec![t];
    assert!(names_unsupported_version(&format!("{r:?}")));
}

#[test]
fn every_advertised_api_answers_at_its_min_and_max_version() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    let versions: ApiVersionsResponse =
        client.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(versions.error_code, 0);
    assert!(versions.api_keys.len() >= 30, "{versions:?}");

    let mut failures = Vec::new();
    let mut walked = 0;
    for api in &versions.api_keys {
        let key = ApiKey::try_from(api.api_key).unwrap();
        assert!(api.min_version <= api.max_version, "{key:?}");
        let mut wanted = vec![api.min_version, api.max_version];
        wanted.dedup();
        for v in wanted {
            walked += 1;
            match walk_one(&mut client, key, v) {
                Ok(text) if names_unsupported_version(&text) => {
                    failures.push(format!("{key:?} v{v}: UNSUPPORTED_VERSION in {text}"));
                }
                Ok(_) => {}
                Err(e) => {
                    failures.push(format!("{key:?} v{v}: {e}"));
                    // Go on with a fresh connection.
                    client = broker.client();
                }
            }
        }
    }
    assert!(walked >= 60, "walked only {walked} versions");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The connection that did all that is still good.
    let again: ApiVersionsResponse =
        client.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(again.api_keys.len(), versions.api_keys.len());
}
