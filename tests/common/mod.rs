//! Starts the real `wharf` binary on a free loopback port with a fresh data
//! directory, and speaks Kafka to it with `kafka-protocol`'s client codecs.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tempfile::TempDir;

pub mod cluster;

pub struct TestBroker {
    child: Option<Child>,
    pub addr: SocketAddr,
    /// What `--listen` is given: `127.0.0.1:PORT` unless a test asks otherwise.
    listen: String,
    pub dir: TempDir,
    args: Vec<String>,
    /// Where the broker's stderr goes when a test reads its log
    /// ([`TestBroker::start_logged`]); inherited otherwise.
    log_path: Option<std::path::PathBuf>,
    /// Open-files limit (soft and hard) the broker runs under, if set.
    nofile: Option<u64>,
    /// Environment variables the broker gets on top of the test's.
    env: Vec<(String, String)>,
}

impl TestBroker {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    pub fn start_with(args: &[&str]) -> Self {
        Self::start_on("127.0.0.1", args)
    }

    /// Like [`TestBroker::start_with`], with the broker's stderr kept in a
    /// file that [`TestBroker::log`] reads (across restarts).
    pub fn start_logged(args: &[&str]) -> Self {
        Self::launch("127.0.0.1", args, true)
    }

    /// Like [`TestBroker::start_logged`], with `env` set for the broker.
    pub fn start_logged_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut broker = Self::new("127.0.0.1", args);
        broker.log_path = Some(broker.dir.path().with_extension("log"));
        broker.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        broker.spawn();
        broker
    }

    /// What the broker has logged so far (empty unless started with
    /// [`TestBroker::start_logged`]).
    pub fn log(&self) -> String {
        self.log_path
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    /// Starts under an open-files limit of `nofile` (soft and hard, set by
    /// `prlimit`, which then execs the broker: same pid).
    pub fn start_limited(nofile: u64, args: &[&str]) -> Self {
        let mut broker = Self::new("127.0.0.1", args);
        broker.nofile = Some(nofile);
        broker.spawn();
        broker
    }

    /// Starts with `--listen HOST:PORT` for a free port.
    pub fn start_on(host: &str, args: &[&str]) -> Self {
        Self::launch(host, args, false)
    }

    fn launch(host: &str, args: &[&str], logged: bool) -> Self {
        let mut broker = Self::new(host, args);
        if logged {
            broker.log_path = Some(broker.dir.path().with_extension("log"));
        }
        broker.spawn();
        broker
    }

    /// A broker not started yet, on a free port and a fresh directory.
    fn new(host: &str, args: &[&str]) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self {
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            listen: format!("{host}:{port}"),
            dir: tempfile::tempdir().unwrap(),
            args: args.iter().map(|s| s.to_string()).collect(),
            log_path: None,
            nofile: None,
            env: Vec::new(),
        }
    }

    /// Starts the broker process (again, after [`TestBroker::stop`]).
    pub fn spawn(&mut self) {
        if let Err(exit) = self.try_spawn() {
            panic!("{exit}");
        }
    }

    /// Starts the broker process; `Err` (status and log) if it exits before
    /// it listens.
    pub fn try_spawn(&mut self) -> Result<(), String> {
        let mut command = match self.nofile {
            None => Command::new(env!("CARGO_BIN_EXE_wharf")),
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}"))
                    .arg("--")
                    .arg(env!("CARGO_BIN_EXE_wharf"));
                c
            }
        };
        command.arg("serve").arg("--listen").arg(&self.listen);
        // A memory-mode broker makes its own data directory.
        if !self.args.iter().any(|a| a == "--memory") {
            command.arg("--data-dir").arg(self.dir.path());
        }
        let child = command
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(match &self.log_path {
                Some(path) => Stdio::from(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .unwrap(),
                ),
                None => Stdio::inherit(),
            })
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(self.addr).is_err() {
            if let Some(exit) = self.exited() {
                return Err(exit);
            }
            assert!(
                Instant::now() < deadline,
                "broker did not start listening:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Why the broker process has exited (its status and log), if it has.
    pub fn exited(&mut self) -> Option<String> {
        let status = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())?;
        Some(format!(
            "broker exited at start ({status}):\n{}",
            self.log()
        ))
    }

    /// Like [`TestBroker::start_logged`], but a broker that exits at start
    /// is an `Err` with its status and log instead of a panic.
    pub fn try_start_logged(args: &[&str]) -> Result<Self, String> {
        let mut broker = Self::new("127.0.0.1", args);
        broker.log_path = Some(broker.dir.path().with_extension("log"));
        broker.try_spawn()?;
        Ok(broker)
    }

    /// Stops the broker (SIGTERM, expecting exit 0; or SIGKILL) and starts it
    /// again on the same port and data directory.
    pub fn restart(&mut self, graceful: bool) {
        self.stop(graceful);
        self.spawn();
    }

    pub fn stop(&mut self, graceful: bool) {
        let mut child = self.child.take().expect("broker running");
        if graceful {
            let status = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status()
                .unwrap();
            assert!(status.success());
            let status = child.wait().unwrap();
            assert_eq!(status.code(), Some(0), "graceful shutdown exits 0");
        } else {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// The broker process's id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("broker running").id()
    }

    /// How many file descriptors the broker process has open now.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }

    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    /// The broker's resident anonymous memory (heap, not file pages), in
    /// bytes.
    pub fn rss_anon(&self) -> u64 {
        self.memory("RssAnon")
    }

    /// The broker's private writable memory, resident or not (heap and
    /// anonymous mappings it has asked the kernel for), in bytes.
    pub fn vm_data(&self) -> u64 {
        self.memory("VmData")
    }

    /// A field of /proc/PID/status given in kB, in bytes.
    fn memory(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc/PID/status"));
        kib * 1024
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(path) = &self.log_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

pub struct Client {
    pub stream: TcpStream,
    correlation_id: i32,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Self {
            stream,
            correlation_id: 0,
        }
    }

    /// Waits up to `limit` for each response (20 s by default).
    #[allow(dead_code)]
    pub fn set_read_timeout(&mut self, limit: Duration) {
        self.stream.set_read_timeout(Some(limit)).unwrap();
    }

    /// Sends a request and decodes its response.
    pub fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        request: &Req,
    ) -> Resp {
        let correlation_id = self.send(key, version, request);
        let mut body = self.read_frame().expect("a response");
        let header =
            ResponseHeader::decode(&mut body, response_header_version(key, version)).unwrap();
        assert_eq!(header.correlation_id, correlation_id);
        let response = Resp::decode(&mut body, version).unwrap();
        assert!(
            body.is_empty(),
            "{} bytes left after the response",
            body.len()
        );
        response
    }

    /// Sends a request without waiting for an answer; returns its correlation id.
    pub fn send<Req: Encodable>(&mut self, key: ApiKey, version: i16, request: &Req) -> i32 {
        self.correlation_id += 1;
        let mut header = RequestHeader::default();
        header.request_api_key = key as i16;
        header.request_api_version = version;
        header.correlation_id = self.correlation_id;
        header.client_id = Some(StrBytes::from_static_str("wharf-tests"));
        let mut frame = BytesMut::new();
        header
            .encode(&mut frame, key.request_header_version(version))
            .unwrap();
        request.encode(&mut frame, version).unwrap();
        self.send_frame(&frame);
        self.correlation_id
    }

    pub fn send_frame(&mut self, body: &[u8]) {
        let mut out = Vec::with_capacity(body.len() + 4);
        out.put_i32(body.len() as i32);
        out.extend_from_slice(body);
        self.stream.write_all(&out).unwrap();
    }

    /// The next response frame, or `None` if the broker closed the connection.
    pub fn read_frame(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        if self.stream.read_exact(&mut size).is_err() {
            return None;
        }
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut body).ok()?;
        Some(Bytes::from(body))
    }

    /// True if the broker has closed this connection.
    pub fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.stream.read(&mut byte), Ok(0) | Err(_))
    }
}

fn response_header_version(key: ApiKey, version: i16) -> i16 {
    if key == ApiKey::ApiVersions {
        0
    } else {
        key.response_header_version(version)
    }
}

/// (error code, base offset) of an acks=all Produce v9 of the batches in
/// `records` to `topic`/`partition`.
pub fn produce_batch(
    client: &mut Client,
    topic: &str,
    partition: i32,
    records: Vec<u8>,
) -> (i16, i64) {
    let mut p = PartitionProduceData::default();
    p.index = partition;
    p.records = Some(Bytes::from(records));
    let mut t = TopicProduceData::default();
    t.name = TopicName(StrBytes::from_string(topic.to_string()));
    t.partition_data = vec![p];
    let mut req = ProduceRequest::default();
    req.acks = -1;
    req.timeout_ms = 5000;
    req.topic_data = vec![t];
    let resp: ProduceResponse = client.call(ApiKey::Produce, 9, &req);
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// A topic name for a request.
pub fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// CreateTopics v7 of one topic with `partitions` partitions, replication
/// factor 1.
pub fn create_topic(
    client: &mut Client,
    topic: &str,
    partitions: i32,
) -> kafka_protocol::messages::CreateTopicsResponse {
    let mut t = kafka_protocol::messages::create_topics_request::CreatableTopic::default();
    t.name = topic_name(topic);
    t.num_partitions = partitions;
    t.replication_factor = 1;
    let mut req = kafka_protocol::messages::CreateTopicsRequest::default();
    req.topics = vec![t];
    req.timeout_ms = 5000;
    client.call(ApiKey::CreateTopics, 7, &req)
}

/// CreateTopics v7 of one topic with `partitions` partitions, replication
/// factor 1 and the topic configs `configs`.
pub fn create_topic_with_configs(
    client: &mut Client,
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> kafka_protocol::messages::CreateTopicsResponse {
    use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
    let mut t = CreatableTopic::default();
    t.name = topic_name(topic);
    t.num_partitions = partitions;
    t.replication_factor = 1;
    t.configs = configs
        .iter()
        .map(|(k, v)| {
            let mut c = CreatableTopicConfig::default();
            c.name = StrBytes::from_string(k.to_string());
            c.value = Some(StrBytes::from_string(v.to_string()));
            c
        })
        .collect();
    let mut req = kafka_protocol::messages::CreateTopicsRequest::default();
    req.topics = vec![t];
    req.timeout_ms = 5000;
    client.call(ApiKey::CreateTopics, 7, &req)
}

/// Fetch v12 of partition `partition` of `topic` from `offset`, up to 1 MiB,
/// without waiting.
pub fn fetch_partition(
    client: &mut Client,
    topic: &str,
    partition: i32,
    offset: i64,
) -> kafka_protocol::messages::fetch_response::PartitionData {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    let mut p = FetchPartition::default();
    p.partition = partition;
    p.fetch_offset = offset;
    p.partition_max_bytes = 1 << 20;
    let mut t = FetchTopic::default();
    t.topic = topic_name(topic);
    t.partitions = vec![p];
    let mut req = kafka_protocol::messages::FetchRequest::default();
    req.replica_id = (-1).into();
    req.max_wait_ms = 0;
    req.max_bytes = 1 << 20;
    req.session_epoch = -1;
    req.topics = vec![t];
    let resp: kafka_protocol::messages::FetchResponse = client.call(ApiKey::Fetch, 12, &req);
    resp.responses[0].partitions[0].clone()
}

/// Runs `command` with `stdin` as its input and its output captured;
/// fails the test if it runs for more than 60 s.
pub fn run_with_input(command: &mut Command, stdin: &[u8]) -> std::process::Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).unwrap();
    drop(input);
    wait_bounded(child, Duration::from_secs(60))
}

/// Starts `command` with no stdin, its stderr captured and its stdout read
/// line by line on a thread: the lines arrive on the receiver, which
/// disconnects when stdout closes.
pub fn spawn_lines(command: &mut Command) -> (Child, std::sync::mpsc::Receiver<String>) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Waits for `child` and collects its output; kills it and fails the test
/// after `limit`.
pub fn wait_bounded(mut child: Child, limit: Duration) -> std::process::Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the command ran for more than {limit:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}
