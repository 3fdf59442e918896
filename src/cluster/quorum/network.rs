//! The quorum's RPCs on the controller listener.
//!
//! # Framing
//!
//! openraft's model (a leader pushing AppendEntries) differs from KRaft's
//! (voters pulling with Fetch), so its three RPCs travel in a framing of
//! our own, shaped like Kafka's so that the listener reads frames the way
//! the broker's does:
//!
//! ```text
//! request:  length int32 | api_key int16 | api_version int16 (0)
//!           | correlation_id int32 | client_id int16-length string ("wharf-quorum")
//!           | body
//! response: length int32 | correlation_id int32 | body
//! ```
//!
//! That is Kafka's request header v1 and response header v0. The api keys
//! come from a private range no Kafka API uses: 32101 Vote, 32102
//! AppendEntries, 32103 InstallSnapshot. A request body is the JSON of
//! `{"cluster_id", "from", "voters": {id: "host:port"}, "rpc": <openraft's
//! request>}`; a response body is the JSON of `{"Ok": <openraft's
//! response>}`, `{"RaftError": <openraft's error>}` or `{"Refused": reason}`.
//!
//! Any other api key is a Kafka request to the controller (BrokerRegistration,
//! BrokerHeartbeat, ApiVersions): it goes, whole, to the [`ControllerApis`]
//! the node installed, which answers in Kafka's own framing.
//!
//! A request whose cluster id or voter set differs from the receiver's, or
//! that claims the receiver's own node id, is refused and logged on both
//! sides: two nodes that disagree on the quorum never vote for each other
//! or accept each other's entries. An unknown api key or a malformed frame
//! closes the connection. Requests on one connection are answered in order.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Raft};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use super::types::{kafka_id, TypeConfig};

/// Api key of openraft's Vote RPC.
pub const API_KEY_VOTE: i16 = 32101;
/// Api key of openraft's AppendEntries RPC.
pub const API_KEY_APPEND_ENTRIES: i16 = 32102;
/// Api key of openraft's InstallSnapshot RPC.
pub const API_KEY_INSTALL_SNAPSHOT: i16 = 32103;

const CLIENT_ID: &str = "wharf-quorum";
/// The largest frame either side accepts (snapshot chunks are a few MiB).
const MAX_FRAME_BYTES: usize = 64 << 20;

/// Who a node is in the quorum: sent with every RPC and checked on receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Identity {
    pub(crate) cluster_id: String,
    pub(crate) node_id: i32,
    pub(crate) voters: BTreeMap<i32, String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Envelope<T> {
    cluster_id: String,
    from: i32,
    voters: BTreeMap<i32, String>,
    rpc: T,
}

#[derive(Debug, Serialize, Deserialize)]
enum Reply<T, E> {
    Ok(T),
    RaftError(E),
    Refused(String),
}

/// Serves the Kafka requests that reach the controller listener.
pub trait ControllerApis: Send + Sync + 'static {
    /// Answers one request frame (without its size prefix): the response
    /// frame (header and body, without the size prefix), or `None` to close
    /// the connection.
    fn handle(
        &self,
        frame: Vec<u8>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<Vec<u8>>> + Send + '_>>;
}

/// State the network's clients and server share with the quorum.
pub(crate) struct NetShared {
    pub(crate) identity: Identity,
    /// Wall-clock ms of each voter's last answer to an AppendEntries.
    acks: Mutex<HashMap<u64, u64>>,
    /// The last leader this node followed and when (wall-clock ms) an
    /// AppendEntries from it last arrived: when this node takes over, how
    /// long the former leader had been silent.
    leader_contact: Mutex<Option<(u64, u64)>>,
    /// Requests refused (either side) for a cluster id or voter mismatch.
    refused: AtomicU64,
    /// Why the last refused request was refused (either side).
    last_refusal: Mutex<Option<String>>,
    /// Where Kafka requests on the controller listener go, once installed.
    pub(crate) controller_apis: std::sync::OnceLock<Arc<dyn ControllerApis>>,
}

impl std::fmt::Debug for NetShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetShared")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl NetShared {
    pub(crate) fn new(identity: Identity) -> Arc<NetShared> {
        Arc::new(NetShared {
            identity,
            acks: Mutex::new(HashMap::new()),
            leader_contact: Mutex::new(None),
            refused: AtomicU64::new(0),
            last_refusal: Mutex::new(None),
            controller_apis: std::sync::OnceLock::new(),
        })
    }

    pub(crate) fn last_ack_ms(&self, id: u64) -> Option<u64> {
        self.acks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .copied()
    }

    /// The leader whose AppendEntries this node took last, and when;
    /// forgotten once taken, so a later tenure of this node does not take
    /// an old contact for a fresh one.
    pub(crate) fn take_leader_contact(&self) -> Option<(u64, u64)> {
        self.leader_contact
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    fn record_leader_contact(&self, leader: u64) {
        *self
            .leader_contact
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((leader, wall_ms()));
    }

    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    pub(crate) fn last_refusal(&self) -> Option<String> {
        self.last_refusal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn record_refusal(&self, reason: &str) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        *self
            .last_refusal
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(reason.to_string());
    }

    fn record_ack(&self, id: u64) {
        self.acks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, wall_ms());
    }

    /// Why a request from `env` must be refused, if it must.
    fn check<T>(&self, env: &Envelope<T>) -> Result<(), String> {
        let me = &self.identity;
        if env.cluster_id != me.cluster_id {
            return Err(format!(
                "cluster id mismatch: node {} is in cluster {:?}, node {} in {:?}",
                env.from, env.cluster_id, me.node_id, me.cluster_id
            ));
        }
        if env.from == me.node_id {
            return Err(format!(
                "duplicate node id: a request from another node claims node id {}",
                env.from
            ));
        }
        if env.voters != me.voters {
            return Err(format!(
                "controller quorum voters disagree: node {} has {}, node {} has {}",
                env.from,
                render_voters(&env.voters),
                me.node_id,
                render_voters(&me.voters)
            ));
        }
        Ok(())
    }
}

/// Renders a voter set in `--controller-quorum-voters` syntax, in id order
/// (one spelling per set: the derived cluster id depends on it).
pub fn render_voters(voters: &BTreeMap<i32, String>) -> String {
    voters
        .iter()
        .map(|(id, addr)| format!("{id}@{addr}"))
        .collect::<Vec<_>>()
        .join(",")
}

async fn read_frame(stream: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = usize::try_from(i32::from_be_bytes(len))
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "negative frame length"))?;
    if len > MAX_FRAME_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds {MAX_FRAME_BYTES}"),
        ));
    }
    let mut buf = vec![0u8; len];
    stream.read_exact(&mut buf).await?;
    Ok(Some(buf))
}

fn frame(parts: &[&[u8]]) -> Vec<u8> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(len + 4);
    out.extend_from_slice(&i32::try_from(len).unwrap_or(i32::MAX).to_be_bytes());
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

/// Encodes a request frame.
fn request_frame(api_key: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut header = Vec::with_capacity(10 + CLIENT_ID.len());
    header.extend_from_slice(&api_key.to_be_bytes());
    header.extend_from_slice(&0i16.to_be_bytes());
    header.extend_from_slice(&correlation_id.to_be_bytes());
    header.extend_from_slice(&i16::try_from(CLIENT_ID.len()).unwrap_or(0).to_be_bytes());
    header.extend_from_slice(CLIENT_ID.as_bytes());
    frame(&[&header, body])
}

/// A request's api key, correlation id and body.
fn parse_request(frame: &[u8]) -> Option<(i16, i32, &[u8])> {
    let api_key = i16::from_be_bytes(frame.get(0..2)?.try_into().ok()?);
    let correlation = i32::from_be_bytes(frame.get(4..8)?.try_into().ok()?);
    let client_len = i16::from_be_bytes(frame.get(8..10)?.try_into().ok()?);
    let body_start = 10 + usize::try_from(client_len.max(0)).ok()?;
    Some((api_key, correlation, frame.get(body_start..)?))
}

/// Serves the quorum's RPCs on `listener` until the returned task is
/// aborted (which also ends every connection it accepted).
pub(crate) fn serve(
    listener: TcpListener,
    raft: Raft<TypeConfig>,
    shared: Arc<NetShared>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        let raft = raft.clone();
                        let shared = Arc::clone(&shared);
                        connections.spawn(async move {
                            if let Err(e) = serve_connection(stream, raft, shared).await {
                                tracing::debug!(%peer, error = %e, "controller connection closed");
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "controller listener failed to accept");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    })
}

async fn serve_connection(
    mut stream: TcpStream,
    raft: Raft<TypeConfig>,
    shared: Arc<NetShared>,
) -> io::Result<()> {
    while let Some(frame_bytes) = read_frame(&mut stream).await? {
        let Some((api_key, correlation, body)) = parse_request(&frame_bytes) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "malformed request header",
            ));
        };
        let reply = match api_key {
            API_KEY_VOTE => handle(&shared, body, |req: VoteRequest<u64>| raft.vote(req)).await,
            API_KEY_APPEND_ENTRIES => {
                handle(&shared, body, |req: AppendEntriesRequest<TypeConfig>| {
                    let leader = req
                        .vote
                        .leader_id()
                        .voted_for()
                        .filter(|_| req.vote.is_committed());
                    let (raft, shared) = (&raft, &shared);
                    async move {
                        let reply = raft.append_entries(req).await;
                        // Anything but a higher vote: the sender leads.
                        let taken = matches!(
                            reply,
                            Ok(AppendEntriesResponse::Success
                                | AppendEntriesResponse::PartialSuccess(_)
                                | AppendEntriesResponse::Conflict)
                        );
                        if let Some(leader) = leader.filter(|_| taken) {
                            shared.record_leader_contact(leader);
                        }
                        reply
                    }
                })
                .await
            }
            API_KEY_INSTALL_SNAPSHOT => {
                handle(&shared, body, |req: InstallSnapshotRequest<TypeConfig>| {
                    raft.install_snapshot(req)
                })
                .await
            }
            _ if shared.controller_apis.get().is_some() => {
                let Some(apis) = shared.controller_apis.get() else {
                    return Ok(());
                };
                match apis.handle(frame_bytes).await {
                    Some(response) => {
                        stream.write_all(&frame(&[&response])).await?;
                        continue;
                    }
                    None => return Ok(()),
                }
            }
            other => {
                tracing::warn!(
                    api_key = other,
                    "unknown api key on the controller listener; closing the connection"
                );
                return Ok(());
            }
        };
        stream
            .write_all(&frame(&[&correlation.to_be_bytes(), &reply]))
            .await?;
    }
    Ok(())
}

async fn handle<Req, Resp, E, Fut>(
    shared: &NetShared,
    body: &[u8],
    call: impl FnOnce(Req) -> Fut,
) -> Vec<u8>
where
    Req: DeserializeOwned,
    Resp: Serialize,
    E: Serialize,
    Fut: std::future::Future<Output = Result<Resp, E>>,
{
    let reply: Reply<Resp, E> = match serde_json::from_slice::<Envelope<Req>>(body) {
        Err(e) => {
            tracing::warn!(error = %e, "malformed quorum request on the controller listener");
            Reply::Refused(format!("malformed request: {e}"))
        }
        Ok(env) => match shared.check(&env) {
            Err(reason) => {
                shared.record_refusal(&reason);
                tracing::warn!(from = env.from, %reason, "refusing a quorum request");
                Reply::Refused(reason)
            }
            Ok(()) => match call(env.rpc).await {
                Ok(r) => Reply::Ok(r),
                Err(e) => Reply::RaftError(e),
            },
        },
    };
    serde_json::to_vec(&reply).unwrap_or_else(|e| {
        tracing::error!(error = %e, "could not encode a quorum reply");
        br#"{"Refused":"reply encoding failed"}"#.to_vec()
    })
}

/// Makes one [`PeerClient`] per target openraft asks for.
#[derive(Debug, Clone)]
pub(crate) struct NetworkFactory {
    pub(crate) shared: Arc<NetShared>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerClient {
        PeerClient {
            target,
            addr: node.addr.clone(),
            stream: None,
            correlation: 0,
            shared: Arc::clone(&self.shared),
            warned: false,
        }
    }
}

/// One connection to one voter; requests go one at a time.
#[derive(Debug)]
pub(crate) struct PeerClient {
    target: u64,
    addr: String,
    stream: Option<TcpStream>,
    correlation: i32,
    shared: Arc<NetShared>,
    /// Whether a refusal was already logged at warn level by this client.
    warned: bool,
}

type Rpc<T, E> = Result<T, RPCError<u64, BasicNode, E>>;

impl PeerClient {
    async fn exchange(&mut self, api_key: i16, body: &[u8]) -> Result<Vec<u8>, (bool, io::Error)> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(&self.addr)
                .await
                .map_err(|e| (true, e))?;
            let _ = stream.set_nodelay(true);
            self.stream = Some(stream);
        }
        self.correlation = self.correlation.wrapping_add(1);
        let correlation = self.correlation;
        let Some(stream) = self.stream.as_mut() else {
            return Err((true, io::Error::other("no connection")));
        };
        let result = async {
            stream
                .write_all(&request_frame(api_key, correlation, body))
                .await?;
            let reply = read_frame(stream)
                .await?
                .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"))?;
            let got = reply
                .get(0..4)
                .and_then(|b| b.try_into().ok())
                .map(i32::from_be_bytes);
            if got != Some(correlation) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "correlation id mismatch",
                ));
            }
            Ok(reply.get(4..).unwrap_or_default().to_vec())
        }
        .await;
        if result.is_err() {
            self.stream = None;
        }
        result.map_err(|e| (false, e))
    }

    /// Sends one RPC. `entries` is the number of log entries it carries: a
    /// request too large for a frame asks openraft to send fewer.
    async fn call<Req, Resp, E>(
        &mut self,
        api_key: i16,
        rpc: Req,
        entries: u64,
        ttl: Duration,
    ) -> Rpc<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: DeserializeOwned + std::error::Error,
    {
        let me = &self.shared.identity;
        let env = Envelope {
            cluster_id: me.cluster_id.clone(),
            from: me.node_id,
            voters: me.voters.clone(),
            rpc,
        };
        let body =
            serde_json::to_vec(&env).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        if body.len() > MAX_FRAME_BYTES - 64 {
            let fit = (entries as usize).saturating_mul(MAX_FRAME_BYTES / 2) / body.len();
            tracing::debug!(
                bytes = body.len(),
                entries,
                fit,
                "quorum request too large for one frame"
            );
            return Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint(u64::try_from(fit).unwrap_or(1).max(1)),
            ));
        }
        let bytes = match tokio::time::timeout(ttl, self.exchange(api_key, &body)).await {
            Err(_) => {
                self.stream = None;
                let e = io::Error::new(io::ErrorKind::TimedOut, "quorum RPC timed out");
                return Err(RPCError::Network(NetworkError::new(&e)));
            }
            Ok(Err((true, e))) => return Err(RPCError::Unreachable(Unreachable::new(&e))),
            Ok(Err((false, e))) => return Err(RPCError::Network(NetworkError::new(&e))),
            Ok(Ok(bytes)) => bytes,
        };
        match serde_json::from_slice::<Reply<Resp, E>>(&bytes) {
            Ok(Reply::Ok(resp)) => Ok(resp),
            Ok(Reply::RaftError(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            Ok(Reply::Refused(reason)) => {
                self.shared.record_refusal(&reason);
                if self.warned {
                    tracing::debug!(target_node = kafka_id(self.target), %reason, "quorum request refused");
                } else {
                    self.warned = true;
                    tracing::warn!(target_node = kafka_id(self.target), %reason, "quorum request refused");
                }
                let e = io::Error::new(io::ErrorKind::PermissionDenied, reason);
                Err(RPCError::Unreachable(Unreachable::new(&e)))
            }
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Rpc<AppendEntriesResponse<u64>, RaftError<u64>> {
        let entries = rpc.entries.len() as u64;
        let resp = self
            .call(API_KEY_APPEND_ENTRIES, rpc, entries, option.hard_ttl())
            .await;
        if resp.is_ok() {
            self.shared.record_ack(self.target);
        }
        resp
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Rpc<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>> {
        self.call(API_KEY_INSTALL_SNAPSHOT, rpc, 0, option.hard_ttl())
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Rpc<VoteResponse<u64>, RaftError<u64>> {
        self.call(API_KEY_VOTE, rpc, 0, option.hard_ttl()).await
    }
}

/// Milliseconds since the Unix epoch.
fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn identity(cluster: &str, node: i32, voters: &[(i32, &str)]) -> Identity {
        Identity {
            cluster_id: cluster.into(),
            node_id: node,
            voters: voters.iter().map(|(i, a)| (*i, a.to_string())).collect(),
        }
    }

    fn envelope(from: &Identity) -> Envelope<()> {
        Envelope {
            cluster_id: from.cluster_id.clone(),
            from: from.node_id,
            voters: from.voters.clone(),
            rpc: (),
        }
    }

    #[test]
    fn request_frames_parse_back() {
        let f = request_frame(API_KEY_VOTE, 7, b"{}");
        let (len, rest) = f.split_at(4);
        assert_eq!(
            i32::from_be_bytes(len.try_into().unwrap()) as usize,
            rest.len()
        );
        assert_eq!(
            parse_request(rest),
            Some((API_KEY_VOTE, 7, b"{}".as_slice()))
        );
        assert_eq!(parse_request(&rest[..5]), None);
    }

    #[test]
    fn a_request_from_another_cluster_voter_set_or_our_own_id_is_refused() {
        let voters = [(1, "h:1"), (2, "h:2"), (3, "h:3")];
        let me = NetShared::new(identity("c", 1, &voters));
        assert!(me.check(&envelope(&identity("c", 2, &voters))).is_ok());
        let err = me
            .check(&envelope(&identity("other", 2, &voters)))
            .unwrap_err();
        assert!(err.contains("cluster id mismatch"), "{err}");
        let err = me
            .check(&envelope(&identity("c", 2, &[(1, "h:1"), (2, "h:2")])))
            .unwrap_err();
        assert!(
            err.contains("voters disagree") && err.contains("1@h:1,2@h:2,3@h:3"),
            "{err}"
        );
        let err = me.check(&envelope(&identity("c", 1, &voters))).unwrap_err();
        assert!(err.contains("duplicate node id"), "{err}");
    }
}
