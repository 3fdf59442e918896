//! SaslAuthenticate reached through the registry: on a listener without
//! SASL, or after authentication (a SASL listener's connection answers it
//! itself during its exchange, `security::sasl`). As Kafka:
//! ILLEGAL_SASL_STATE.

use kafka_protocol::messages::{SaslAuthenticateRequest, SaslAuthenticateResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{HandlerResult, Request};
use crate::security::sasl::AUTHENTICATE_VERSIONS;

pub const MIN_VERSION: i16 = AUTHENTICATE_VERSIONS.0;
pub const MAX_VERSION: i16 = AUTHENTICATE_VERSIONS.1;

pub async fn handle(request: Request) -> HandlerResult {
    let _: SaslAuthenticateRequest = request.decode()?;
    let mut response = SaslAuthenticateResponse::default();
    response.error_code = ResponseError::IllegalSaslState.code();
    response.error_message = Some(StrBytes::from_static_str(
        "SaslAuthenticate request received without a SASL handshake on this connection or after successful authentication",
    ));
    request.respond(&response)
}
