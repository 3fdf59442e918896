//! Authorization of requests: what handlers ask before they act, with the
//! connection's principal and host and the ACLs of this broker's metadata
//! image. The decision itself is Kafka's `StandardAuthorizer`
//! (`wharf_coordinator::acl`); this module adds the log lines and the
//! fast path: without `authorizer.class.name` every check is one branch on
//! a `None`, with no allocation.
//!
//! Denials are logged at info level on target `wharf::authorizer`, allowed
//! requests at debug, in the shape of Kafka's authorizer log:
//! `Principal = User:bob is Denied operation = Read from host = 127.0.0.1
//! on resource = Topic:LITERAL:orders for request = Fetch`.
//!
//! APIs whose handler does not check each resource itself are allowed by
//! [`gate`] to super users only while the authorizer is on: see
//! [`checked_by_handler`].

use kafka_protocol::messages::ApiKey;
use wharf_coordinator::acl::{Operation, ResourceType, CLUSTER_NAME};

use crate::handlers::Request;

pub use wharf_coordinator::acl::{Operation as Op, ResourceType as Resource};

impl Request {
    /// Whether an authorizer is configured.
    pub fn authorizer_on(&self) -> bool {
        self.broker.settings.authorizer.is_some()
    }

    /// May this request's principal do `operation` on `resource`/`name`?
    /// Logs a denial at info level.
    pub fn authorized(&self, operation: Operation, resource: ResourceType, name: &str) -> bool {
        self.check(operation, resource, name, true)
    }

    /// As [`Request::authorized`], but a denial is logged at debug level
    /// only: for filtering lists (all topics of a Metadata request), as
    /// Kafka's `logIfDenied = false`.
    pub fn authorized_quietly(
        &self,
        operation: Operation,
        resource: ResourceType,
        name: &str,
    ) -> bool {
        self.check(operation, resource, name, false)
    }

    /// May this request's principal do `operation` on the cluster?
    pub fn authorized_on_cluster(&self, operation: Operation) -> bool {
        self.authorized(operation, ResourceType::Cluster, CLUSTER_NAME)
    }

    fn check(&self, operation: Operation, resource: ResourceType, name: &str, loud: bool) -> bool {
        let Some(authorizer) = &self.broker.settings.authorizer else {
            return true;
        };
        let host = self
            .client_host
            .strip_prefix('/')
            .unwrap_or(&self.client_host);
        if authorizer.is_super_user(&self.principal) {
            return true;
        }
        let image = self.broker.image();
        let decision = authorizer.authorize(
            image.acls(),
            &self.principal,
            host,
            operation,
            resource,
            name,
        );
        let allowed = decision.allowed();
        let verdict = if allowed { "Allowed" } else { "Denied" };
        let pattern = "LITERAL";
        if !allowed && loud {
            tracing::info!(
                target: "wharf::authorizer",
                "Principal = {} is {verdict} operation = {operation} from host = {host} on resource = {resource}:{pattern}:{name} for request = {:?} based on {decision}",
                self.principal,
                self.api_key,
            );
        } else {
            tracing::debug!(
                target: "wharf::authorizer",
                "Principal = {} is {verdict} operation = {operation} from host = {host} on resource = {resource}:{pattern}:{name} for request = {:?} based on {decision}",
                self.principal,
                self.api_key,
            );
        }
        allowed
    }
}

/// The APIs whose handlers check the ACLs of each resource they touch,
/// with Kafka's error codes. Every other API, while the authorizer is on,
/// is served to super users only ([`gate`]); SASL and ApiVersions need no
/// authorization.
pub fn checked_by_handler(api: ApiKey) -> bool {
    matches!(
        api,
        ApiKey::ApiVersions
            | ApiKey::SaslHandshake
            | ApiKey::SaslAuthenticate
            | ApiKey::Produce
            | ApiKey::Fetch
            | ApiKey::ListOffsets
            | ApiKey::Metadata
            | ApiKey::OffsetCommit
            | ApiKey::OffsetFetch
            | ApiKey::FindCoordinator
            | ApiKey::JoinGroup
            | ApiKey::Heartbeat
            | ApiKey::LeaveGroup
            | ApiKey::SyncGroup
            | ApiKey::DescribeGroups
            | ApiKey::ListGroups
            | ApiKey::CreateTopics
            | ApiKey::DeleteTopics
            | ApiKey::InitProducerId
            | ApiKey::DescribeConfigs
            | ApiKey::AlterConfigs
            | ApiKey::IncrementalAlterConfigs
            | ApiKey::DescribeCluster
            | ApiKey::CreateAcls
            | ApiKey::DescribeAcls
            | ApiKey::DeleteAcls
    )
}

/// Whether `request` may reach its handler: always without an authorizer
/// and for the APIs of [`checked_by_handler`]; otherwise only for a super
/// user (a refusal is logged, and the connection is closed).
pub fn gate(request: &Request) -> bool {
    let Some(authorizer) = &request.broker.settings.authorizer else {
        return true;
    };
    if checked_by_handler(request.api_key) || authorizer.is_super_user(&request.principal) {
        return true;
    }
    tracing::info!(
        target: "wharf::authorizer",
        "Principal = {} is Denied request = {:?} from host = {}: with the authorizer on, Wharf serves this API to super users only",
        request.principal,
        request.api_key,
        request.client_host,
    );
    false
}

impl Request {
    /// Kafka's authorized-operations bitfield for a resource: of the
    /// operations set in `applicable` (bit N = operation code N), those the
    /// principal may do. Without an authorizer, `applicable` itself.
    pub fn authorized_ops(&self, resource: ResourceType, name: &str, applicable: i32) -> i32 {
        if !self.authorizer_on() || applicable == crate::handlers::authorized_ops::OMITTED {
            return applicable;
        }
        let mut out = 0i32;
        for code in 0..15i8 {
            let bit = 1i32 << code;
            if applicable & bit == 0 {
                continue;
            }
            if let Some(op) = Operation::from_code(code) {
                if self.authorized_quietly(op, resource, name) {
                    out |= bit;
                }
            }
        }
        out
    }
}

impl Request {
    /// GROUP_AUTHORIZATION_FAILED unless the principal may `operation` the
    /// group (READ for membership and commits, DESCRIBE for lookups).
    pub fn group_denied(
        &self,
        operation: Operation,
        group: &str,
    ) -> Option<kafka_protocol::ResponseError> {
        (!self.authorized(operation, ResourceType::Group, group))
            .then_some(kafka_protocol::ResponseError::GroupAuthorizationFailed)
    }

    /// TRANSACTIONAL_ID_AUTHORIZATION_FAILED unless the principal may
    /// `operation` the transactional id.
    pub fn txn_denied(
        &self,
        operation: Operation,
        id: &str,
    ) -> Option<kafka_protocol::ResponseError> {
        (!self.authorized(operation, ResourceType::TransactionalId, id))
            .then_some(kafka_protocol::ResponseError::TransactionalIdAuthorizationFailed)
    }
}

impl Request {
    /// May this principal start an idempotent producer: IDEMPOTENT_WRITE on
    /// the cluster, or WRITE on some topic (as Kafka's InitProducerId asks).
    pub fn may_write_idempotently(&self) -> bool {
        let Some(authorizer) = &self.broker.settings.authorizer else {
            return true;
        };
        if self.authorized_quietly(
            Operation::IdempotentWrite,
            ResourceType::Cluster,
            CLUSTER_NAME,
        ) {
            return true;
        }
        let host = self
            .client_host
            .strip_prefix('/')
            .unwrap_or(&self.client_host);
        let image = self.broker.image();
        let allowed = authorizer.authorize_any(
            image.acls(),
            &self.principal,
            host,
            Operation::Write,
            ResourceType::Topic,
        );
        if !allowed {
            tracing::info!(
                target: "wharf::authorizer",
                "Principal = {} is Denied operation = IdempotentWrite from host = {host} on resource = Cluster:LITERAL:{CLUSTER_NAME} for request = {:?} (and may WRITE no topic)",
                self.principal,
                self.api_key,
            );
        }
        allowed
    }
}

impl Request {
    /// For DescribeConfigs (DESCRIBE_CONFIGS) and the alter-configs APIs
    /// (ALTER_CONFIGS): TOPIC_AUTHORIZATION_FAILED for a topic the principal
    /// may not `operation`, CLUSTER_AUTHORIZATION_FAILED for a broker or
    /// broker logger resource without `operation` on the cluster.
    pub fn config_resource_denied(
        &self,
        operation: Operation,
        resource_type: i8,
        name: &str,
    ) -> Option<kafka_protocol::ResponseError> {
        use kafka_protocol::ResponseError;
        const TOPIC: i8 = 2;
        match resource_type {
            TOPIC => (!self.authorized(operation, ResourceType::Topic, name))
                .then_some(ResponseError::TopicAuthorizationFailed),
            _ => (!self.authorized_on_cluster(operation))
                .then_some(ResponseError::ClusterAuthorizationFailed),
        }
    }
}
