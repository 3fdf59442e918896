//! DescribeQuorum: the metadata quorum's voters, leader, epoch, high
//! watermark and each voter's progress, as the active controller knows them
//! (a broker that does not lead asks the one that does, as Kafka's brokers
//! forward it).

use kafka_protocol::messages::{DescribeQuorumRequest, DescribeQuorumResponse};
use kafka_protocol::ResponseError;

use super::{HandlerResult, Request};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 2;

pub async fn handle(request: Request) -> HandlerResult {
    let _body: DescribeQuorumRequest = request.decode()?;
    let response = match request.broker.cluster() {
        Some(node) => node.describe_quorum_from_leader().await,
        None => {
            let mut response = DescribeQuorumResponse::default();
            response.error_code = ResponseError::NotController.code();
            response
        }
    };
    request.respond(&response)
}
