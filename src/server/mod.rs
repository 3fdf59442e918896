//! The listener side: bind, accept, one task per connection, and graceful
//! shutdown (stop accepting, let in-flight requests finish, flush, exit).

mod connection;
pub mod dispatch;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::broker::{Broker, BrokerSettings};
use crate::config::Config;
use connection::Connection;

/// How long shutdown waits for connections to finish their requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// A broker ready to serve: its listeners are bound (connections queue in
/// the backlog) and its data directory is open and replayed.
pub struct Prepared {
    listeners: Vec<std::net::TcpListener>,
    broker: Arc<Broker>,
    limits: Limits,
}

/// Binds the listeners and opens the data directory, on the calling thread
/// and before any async runtime exists: start-up does this work once, and
/// doing it here saves the thread hand-offs a runtime would add between the
/// process starting and its first answered request.
pub fn prepare(config: &Config) -> anyhow::Result<Prepared> {
    let listeners = bind(&config.listen)?;
    let bound: Vec<SocketAddr> = listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .collect();
    let port = bound
        .first()
        .map(|a| a.port())
        .context("no address bound")?;
    let (advertised_host, advertised_port) = advertised(config, port)?;
    let broker = open_broker(settings(config, advertised_host, advertised_port))?;
    tracing::info!(
        listen = ?bound,
        advertised = %format!("{}:{}", broker.settings.advertised_host, broker.settings.advertised_port),
        node_id = broker.settings.node_id,
        cluster_id = %broker.cluster_id,
        "wharf is ready"
    );
    let limits = Limits {
        max_connections: config.max_connections,
        max_request_size: config.max_request_size,
    };
    Ok(Prepared {
        listeners,
        broker,
        limits,
    })
}

/// The broker's settings from its flags and the address it advertises.
pub fn settings(config: &Config, advertised_host: String, advertised_port: i32) -> BrokerSettings {
    BrokerSettings {
        node_id: config.node_id,
        advertised_host,
        advertised_port,
        data_dir: config.resolved_data_dir(),
        default_partitions: config.num_partitions,
        auto_create_topics: config.auto_create_topics,
        groups: config.group_config(),
        txns: config.txn_config(),
        configs: config.broker_configs(),
        retention_check_interval: Duration::from_millis(config.log_retention_check_interval_ms),
        flush_check_interval: Duration::from_millis(config.log_flush_scheduler_interval_ms),
        fsync_before_ack: config.fsync_before_ack,
        cleaner_interval: Duration::from_millis(config.log_cleaner_backoff_ms),
        cleaner_io_max_bytes_per_second: config.log_cleaner_io_max_bytes_per_second,
        compression_type: config.compression_type,
        max_decompressed_batch_bytes: config.max_decompressed_batch_bytes,
    }
}

/// Opens (or creates) the data directory and replays topics, consumer
/// groups and transactions: a broker ready for requests.
pub fn open_broker(settings: BrokerSettings) -> anyhow::Result<Arc<Broker>> {
    let broker = Arc::new(Broker::open(settings).context("opening the data directory")?);
    broker.load_groups().context("loading consumer groups")?;
    broker.load_txns().context("loading transactions")?;
    Ok(broker)
}

/// Serves a prepared broker until SIGINT or SIGTERM. Must run inside a
/// Tokio runtime.
pub async fn serve(prepared: Prepared) -> anyhow::Result<()> {
    let Prepared {
        listeners,
        broker,
        limits,
    } = prepared;
    let listeners = listeners
        .into_iter()
        .map(TcpListener::from_std)
        .collect::<Result<Vec<_>, _>>()
        .context("registering the listeners with the runtime")?;
    run(listeners, broker, limits, shutdown_signal()).await
}

/// Per-server limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub max_request_size: usize,
}

/// Serves `listeners` until `shutdown` completes, then drains connections and
/// flushes the broker's logs.
pub async fn run(
    listeners: Vec<TcpListener>,
    broker: Arc<Broker>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection holds a clone; when all are dropped, recv() ends.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut acceptors = Vec::new();
    for listener in listeners {
        acceptors.push(tokio::spawn(accept_loop(
            listener,
            broker.clone(),
            limits,
            permits.clone(),
            stop_rx.clone(),
            alive_tx.clone(),
        )));
    }
    drop(alive_tx);
    let ticker = tokio::spawn(group_ticker(broker.clone()));
    let retention = tokio::spawn(crate::broker::retention::run(
        broker.clone(),
        stop_rx.clone(),
    ));
    shutdown.await;
    ticker.abort();
    tracing::info!("shutting down: no new connections; finishing in-flight requests");
    // The receiver half lives on in every connection, so this cannot fail.
    let _ = stop_tx.send(true);
    for acceptor in acceptors {
        let _ = acceptor.await;
    }
    let _ = retention.await;
    if tokio::time::timeout(DRAIN_TIMEOUT, alive_rx.recv())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish within {DRAIN_TIMEOUT:?}");
    }
    let flushing = broker.clone();
    tokio::task::spawn_blocking(move || flushing.flush_all())
        .await
        .context("flushing logs")?;
    tracing::info!("wharf stopped cleanly");
    Ok(())
}

/// How often the group coordinator's timers run.
const GROUP_TICK: Duration = Duration::from_millis(100);

/// Drives the group coordinator's timers (session expiry, rebalance
/// deadlines, offset retention) and persists what they produce.
async fn group_ticker(broker: Arc<Broker>) {
    let mut interval = tokio::time::interval(GROUP_TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        broker.groups.tick(crate::broker::groups::now_ms());
        broker.flush_group_records();
        let txns = broker.clone();
        // Markers are file writes: off the async workers.
        let _ = tokio::task::spawn_blocking(move || txns.tick_txns()).await;
    }
}

async fn accept_loop(
    listener: TcpListener,
    broker: Arc<Broker>,
    limits: Limits,
    permits: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = stop.wait_for(|s| *s) => return,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let connection =
                    Connection::new(stream, peer, broker.clone(), limits.max_request_size);
                let stop = stop.clone();
                let alive = alive.clone();
                tokio::spawn(async move {
                    connection.run(stop).await;
                    drop(permit);
                    drop(alive);
                });
            }
            Err(e) => {
                // Typically EMFILE: back off rather than spin.
                tracing::error!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Binds every address `listen` resolves to. `localhost` always means both
/// loopback addresses, whatever this machine's resolver says, because
/// clients resolve it to either. Port 0 binds the first address to a free
/// port and the others to the same one.
fn bind(listen: &str) -> anyhow::Result<Vec<std::net::TcpListener>> {
    let mut addrs: Vec<SocketAddr> = match listen.rsplit_once(':') {
        Some((host, port)) if host.eq_ignore_ascii_case("localhost") => {
            let port: u16 = port
                .parse()
                .with_context(|| format!("bad port in --listen {listen:?}"))?;
            vec![
                SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port)),
                SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)),
            ]
        }
        _ => std::net::ToSocketAddrs::to_socket_addrs(listen)
            .with_context(|| format!("resolving --listen {listen:?}"))?
            .collect(),
    };
    addrs.dedup();
    if addrs.is_empty() {
        bail!("--listen {listen:?} resolves to no address");
    }
    let mut listeners = Vec::new();
    let mut port = None;
    let mut last_err = None;
    for mut addr in addrs {
        if let Some(p) = port {
            addr.set_port(p);
        }
        match bind_one(addr) {
            Ok(l) => {
                port = l.local_addr().ok().map(|a| a.port());
                listeners.push(l);
            }
            Err(e) => {
                tracing::warn!(%addr, "could not bind: {e}");
                last_err = Some(e);
            }
        }
    }
    match (listeners.is_empty(), last_err) {
        (true, Some(e)) => Err(e).with_context(|| format!("binding {listen}")),
        _ => Ok(listeners),
    }
}

/// A non-blocking listening socket on `addr`, ready for Tokio. (std sets
/// SO_REUSEADDR on Unix, so a restart does not wait out TIME_WAIT.)
fn bind_one(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// The host and port Metadata advertises: the flag, or the listen host with
/// the bound port (`localhost` for a wildcard listen address).
fn advertised(config: &Config, bound_port: u16) -> anyhow::Result<(String, i32)> {
    let source = config
        .advertised_listener
        .as_deref()
        .unwrap_or(&config.listen);
    let (host, port) = source
        .rsplit_once(':')
        .with_context(|| format!("{source:?} is not host:port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let mut port: i32 = port
        .parse()
        .with_context(|| format!("bad port in {source:?}"))?;
    if config.advertised_listener.is_none() {
        port = i32::from(bound_port);
    }
    let host = match host {
        "" | "0.0.0.0" | "::" => {
            tracing::warn!("listening on a wildcard address; advertising localhost (set --advertised-listener for remote clients)");
            "localhost".to_string()
        }
        h => h.to_string(),
    };
    Ok((host, port))
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
