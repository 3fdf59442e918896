//! SaslHandshake reached through the registry: on a listener without SASL,
//! or after authentication. A SASL listener's connection answers it itself
//! during its exchange (`security::sasl`); here, as Kafka does, it is
//! ILLEGAL_SASL_STATE.

use kafka_protocol::messages::{SaslHandshakeRequest, SaslHandshakeResponse};
use kafka_protocol::ResponseError;

use super::{HandlerResult, Request};
use crate::security::sasl::HANDSHAKE_VERSIONS;

pub const MIN_VERSION: i16 = HANDSHAKE_VERSIONS.0;
pub const MAX_VERSION: i16 = HANDSHAKE_VERSIONS.1;

pub async fn handle(request: Request) -> HandlerResult {
    let _: SaslHandshakeRequest = request.decode()?;
    let mut response = SaslHandshakeResponse::default();
    response.error_code = ResponseError::IllegalSaslState.code();
    request.respond(&response)
}
