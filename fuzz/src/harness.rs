//! A real `Broker` on a temporary data directory, opened once per fuzz
//! process, and a current-thread Tokio runtime with a paused clock: a
//! long-poll (Fetch's max_wait, a JoinGroup waiting for its rebalance)
//! passes in virtual time instead of stalling the fuzzer.
//!
//! Each input is served as one connection would serve it: frames are cut by
//! `FrameDecoder`, each goes through `wharf::server::dispatch::dispatch`
//! (header, registry lookup, handler), and the first error ends the input,
//! as it would close the connection.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::runtime::Runtime;
use tokio::sync::watch;
use wharf::broker::Broker;
use wharf::budget::ResponseBudget;
use wharf::config::Config;
use wharf::server::dispatch::{dispatch, Client, Dispatched};
use wharf::server::{open_broker, settings};
use wharf_protocol::frame::FrameDecoder;

use crate::check::check_response;
use crate::seeds;

/// How long (virtual time) a handler may wait before the harness signals
/// shutdown, which ends every long wait as it does in the server.
const PATIENCE: Duration = Duration::from_secs(60);

pub struct Harness {
    runtime: Runtime,
    broker: Arc<Broker>,
    /// Flipped to true when a handler outlives `PATIENCE`, then back.
    stop: watch::Sender<bool>,
    client: Client,
    max_request_size: usize,
    dir: PathBuf,
}

static HARNESS: OnceLock<Harness> = OnceLock::new();

/// The process's harness, opened on first use.
pub fn harness() -> &'static Harness {
    HARNESS.get_or_init(Harness::open)
}

extern "C" fn remove_data_dir() {
    if let Some(h) = HARNESS.get() {
        let _ = std::fs::remove_dir_all(&h.dir);
    }
}

impl Harness {
    fn open() -> Self {
        let dir = std::env::temp_dir().join(format!("wharf-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // libFuzzer ends a run with exit(), which runs this; a crash leaves
        // the directory behind for a look.
        // SAFETY: registering a plain extern "C" function with no arguments.
        unsafe {
            libc::atexit(remove_data_dir);
        }
        let data_dir = dir.display().to_string();
        let config = Config::from_flags(["--data-dir", &data_dir, "--listen", "127.0.0.1:0"])
            .expect("fuzz broker flags parse");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("Tokio runtime");
        let broker = {
            let _in_runtime = runtime.enter();
            let listener = wharf::broker::AdvertisedListener {
                name: "PLAINTEXT".to_string(),
                host: "localhost".to_string(),
                port: 9092,
            };
            open_broker(settings(&config, listener, Vec::new()))
                .expect("broker opens on an empty data directory")
        };
        let (stop, shutdown) = watch::channel(false);
        let harness = Self {
            runtime,
            broker,
            stop,
            client: Client {
                host: "/127.0.0.1".to_string(),
                listener: std::sync::Arc::from("PLAINTEXT"),
                principal: std::sync::Arc::from(wharf::security::ANONYMOUS),
                shutdown,
                response_budget: ResponseBudget::new(
                    usize::try_from(config.queued_max_response_bytes).unwrap_or(usize::MAX),
                ),
            },
            max_request_size: config.max_request_size,
            dir,
        };
        // Something for requests to find: a topic with records, a group.
        for request in seeds::setup_stream() {
            harness.serve_stream(&request);
        }
        harness
    }

    /// Serves a byte stream as one connection: frame after frame until the
    /// bytes run out or a request would close the connection.
    pub fn serve_stream(&self, data: &[u8]) {
        let decoder = FrameDecoder::new(self.max_request_size);
        let mut buf = BytesMut::from(data);
        while let Ok(Some(frame)) = decoder.decode(&mut buf) {
            if self.serve_frame(frame).is_none() {
                return;
            }
        }
    }

    /// Serves one request frame (no size prefix) and checks the response.
    /// `None` when the connection would be closed.
    pub fn serve_frame(&self, frame: Bytes) -> Option<Dispatched> {
        let done = self.runtime.block_on(async {
            let handling = dispatch(&self.broker, frame, &self.client);
            tokio::pin!(handling);
            tokio::select! {
                done = &mut handling => done,
                _ = tokio::time::sleep(PATIENCE) => {
                    self.stop.send_replace(true);
                    let done = handling.await;
                    self.stop.send_replace(false);
                    done
                }
            }
        });
        let done = done.ok()?;
        check_response(&done);
        Some(done)
    }
}
