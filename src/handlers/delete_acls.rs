//! DeleteAcls: every ACL each filter matches is removed through the
//! controller. Needs ALTER on the cluster (else CLUSTER_AUTHORIZATION_FAILED
//! for every filter); a filter with UNKNOWN codes is INVALID_REQUEST.

use kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult;
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{HandlerResult, Request};
use crate::security::authz::Op;

/// Kafka 4 serves v2-v3 (v0-v1 were removed by KIP-896).
pub const MIN_VERSION: i16 = 2;
pub const MAX_VERSION: i16 = 3;

pub async fn handle(request: Request) -> HandlerResult {
    let body: DeleteAclsRequest = request.decode()?;
    let count = body.filters.len();
    let failed = |code: ResponseError, message: String| {
        let mut response = DeleteAclsResponse::default();
        response.filter_results = (0..count)
            .map(|_| {
                let mut r = DeleteAclsFilterResult::default();
                r.error_code = code.code();
                r.error_message = Some(StrBytes::from_string(message.clone()));
                r
            })
            .collect();
        response
    };
    if !request.authorized_on_cluster(Op::Alter) {
        let response = failed(
            ResponseError::ClusterAuthorizationFailed,
            "Cluster authorization failed.".to_string(),
        );
        return request.respond(&response);
    }
    let response = match request.broker.delete_acls(body).await {
        Ok(response) => response,
        Err(e) => {
            tracing::info!("DeleteAcls failed: {e}");
            failed(e.kafka_error(), e.to_string())
        }
    };
    request.respond(&response)
}
