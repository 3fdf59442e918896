//! The log engine's write-side file operations, with named fail points.
//!
//! Every call that changes a log's files on disk (creating, writing,
//! fsyncing, truncating, renaming, removing) goes through a function here
//! that names its fail point. Tests, and `wharf serve --fault-injection`,
//! arm fail points so that those calls return `ENOSPC` or `EIO` as a full
//! or failing disk would, and the code above must cope: refuse the write,
//! keep what was acknowledged readable, never panic. Reads have no fail
//! points.
//!
//! Arming is process-wide. A fault may be limited to paths containing a
//! given string (a test's temporary directory), so tests running in one
//! process do not disturb each other. When nothing is armed, a call costs
//! one relaxed atomic load.
//!
//! The spec language (`--fault-injection`): a comma-separated list of
//! `POINT=ERROR[@TRIGGER]`, where `ERROR` is `enospc` or `eio` and `TRIGGER`
//! is `always` (the default), `after:N` (the first N calls succeed, every
//! later one fails) or `next:N` (the next N calls fail, later ones succeed).
//! For example `segment-write=enospc@after:3,segment-sync=eio@next:1`.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

/// A named place where file I/O can be made to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailPoint {
    /// Creating (or opening for writing) a segment's `.log`, `.index` or `.timeindex`.
    SegmentCreate,
    /// Writing record batches to a `.log` file.
    SegmentWrite,
    /// Writing entries to an `.index` or `.timeindex` file.
    IndexWrite,
    /// fsync of a segment's `.log`, `.index` or `.timeindex`.
    SegmentSync,
    /// fsync of a directory (a partition's, or the data directory after a checkpoint).
    DirSync,
    /// Cutting a file to a length (truncation, rollback of a failed append).
    Truncate,
    /// Renaming a file (compaction swapping in a cleaned segment, checkpoints).
    Rename,
    /// Removing a file (retention, truncation, compaction).
    Remove,
    /// Writing a compaction output or a checkpoint file.
    AuxWrite,
    /// fsync of a compaction output or a checkpoint file.
    AuxSync,
    /// Writing entries to the metadata quorum's Raft log (`*.raftlog` in
    /// `__cluster_metadata-0`); its vote, snapshot and state files are
    /// written at `aux-write`/`aux-sync`.
    QuorumLogWrite,
    /// fsync of the metadata quorum's Raft log and of its directory: apart
    /// from `segment-sync` and `dir-sync`, so that faults armed for the
    /// partitions' logs do not stop the broker's quorum.
    QuorumLogSync,
}

impl FailPoint {
    /// Every fail point, for help texts and tests.
    pub const ALL: [FailPoint; 12] = [
        FailPoint::SegmentCreate,
        FailPoint::SegmentWrite,
        FailPoint::IndexWrite,
        FailPoint::SegmentSync,
        FailPoint::DirSync,
        FailPoint::Truncate,
        FailPoint::Rename,
        FailPoint::Remove,
        FailPoint::AuxWrite,
        FailPoint::AuxSync,
        FailPoint::QuorumLogWrite,
        FailPoint::QuorumLogSync,
    ];

    /// The name used in specs.
    pub fn name(self) -> &'static str {
        match self {
            FailPoint::SegmentCreate => "segment-create",
            FailPoint::SegmentWrite => "segment-write",
            FailPoint::IndexWrite => "index-write",
            FailPoint::SegmentSync => "segment-sync",
            FailPoint::DirSync => "dir-sync",
            FailPoint::Truncate => "truncate",
            FailPoint::Rename => "rename",
            FailPoint::Remove => "remove",
            FailPoint::AuxWrite => "aux-write",
            FailPoint::AuxSync => "aux-sync",
            FailPoint::QuorumLogWrite => "quorum-log-write",
            FailPoint::QuorumLogSync => "quorum-log-sync",
        }
    }
}

impl fmt::Display for FailPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FailPoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        FailPoint::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = FailPoint::ALL.iter().map(|p| p.name()).collect();
                format!(
                    "unknown fail point {s:?}: expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// The error an armed fail point returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectedError {
    /// No space left on device.
    NoSpace,
    /// An I/O error from the device.
    Eio,
}

impl InjectedError {
    fn to_io(self) -> io::Error {
        // ENOSPC is 28 and EIO is 5 on Linux (every architecture) and macOS.
        match self {
            InjectedError::NoSpace => io::Error::from_raw_os_error(28),
            InjectedError::Eio => io::Error::from_raw_os_error(5),
        }
    }
}

/// When an armed fail point fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Every call fails.
    Always,
    /// The first `n` calls succeed; every later one fails.
    After(u64),
    /// The next `n` calls fail; later ones succeed.
    Next(u64),
}

/// One armed fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// Where.
    pub point: FailPoint,
    /// What the call returns.
    pub error: InjectedError,
    /// When.
    pub trigger: Trigger,
    /// Only calls on paths containing this string fail (`None`: any path).
    pub path_contains: Option<String>,
}

impl Fault {
    /// A fault on every call at `point`, on any path.
    pub fn new(point: FailPoint, error: InjectedError, trigger: Trigger) -> Fault {
        Fault {
            point,
            error,
            trigger,
            path_contains: None,
        }
    }

    /// Limits the fault to paths under (containing) `dir`.
    pub fn under(mut self, dir: &Path) -> Fault {
        self.path_contains = Some(dir.display().to_string());
        self
    }
}

/// Parses a `--fault-injection` spec (see the module documentation).
pub fn parse_spec(spec: &str) -> Result<Vec<Fault>, String> {
    let mut faults = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (point, rest) = part
            .split_once('=')
            .ok_or_else(|| format!("fault {part:?} is not POINT=ERROR[@TRIGGER]"))?;
        let point: FailPoint = point.trim().parse()?;
        let (error, trigger) = match rest.split_once('@') {
            Some((e, t)) => (e.trim(), Some(t.trim())),
            None => (rest.trim(), None),
        };
        let error = match error {
            "enospc" => InjectedError::NoSpace,
            "eio" => InjectedError::Eio,
            other => return Err(format!("unknown error {other:?}: expected enospc or eio")),
        };
        let count = |n: &str| {
            n.parse::<u64>()
                .map_err(|_| format!("bad count {n:?} in fault {part:?}"))
        };
        let trigger = match trigger {
            None | Some("always") => Trigger::Always,
            Some(t) => match t.split_once(':') {
                Some(("after", n)) => Trigger::After(count(n)?),
                Some(("next", n)) => Trigger::Next(count(n)?),
                _ => {
                    return Err(format!(
                        "unknown trigger {t:?}: expected always, after:N or next:N"
                    ))
                }
            },
        };
        faults.push(Fault::new(point, error, trigger));
    }
    Ok(faults)
}

/// An armed fault and the calls it has seen.
#[derive(Debug)]
struct Armed {
    fault: Fault,
    calls: u64,
}

/// Whether anything is armed: the fast path's one check.
static ANY_ARMED: AtomicBool = AtomicBool::new(false);
static ARMED: Mutex<Vec<Armed>> = Mutex::new(Vec::new());

/// Arms `fault` (in addition to those already armed).
pub fn arm(fault: Fault) {
    let mut armed = ARMED.lock().unwrap_or_else(PoisonError::into_inner);
    armed.push(Armed { fault, calls: 0 });
    ANY_ARMED.store(true, Ordering::Release);
}

/// Arms every fault of a `--fault-injection` spec.
pub fn arm_spec(spec: &str) -> Result<Vec<Fault>, String> {
    let faults = parse_spec(spec)?;
    for fault in &faults {
        arm(fault.clone());
    }
    Ok(faults)
}

/// Disarms the faults limited to paths containing `path_contains`
/// (`None`: every fault).
pub fn disarm(path_contains: Option<&Path>) {
    let mut armed = ARMED.lock().unwrap_or_else(PoisonError::into_inner);
    match path_contains {
        None => armed.clear(),
        Some(dir) => {
            let dir = dir.display().to_string();
            armed.retain(|a| a.fault.path_contains.as_deref() != Some(dir.as_str()));
        }
    }
    ANY_ARMED.store(!armed.is_empty(), Ordering::Release);
}

/// The injected error for a call at `point` on `path`, if an armed fault fires.
fn check(point: FailPoint, path: &Path) -> io::Result<()> {
    if !ANY_ARMED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut armed = ARMED.lock().unwrap_or_else(PoisonError::into_inner);
    let shown = path.display().to_string();
    for a in armed.iter_mut() {
        if a.fault.point != point
            || a.fault
                .path_contains
                .as_deref()
                .is_some_and(|p| !shown.contains(p))
        {
            continue;
        }
        a.calls = a.calls.saturating_add(1);
        let fires = match a.fault.trigger {
            Trigger::Always => true,
            Trigger::After(n) => a.calls > n,
            Trigger::Next(n) => a.calls <= n,
        };
        if fires {
            tracing::warn!(%point, path = %shown, error = ?a.fault.error, "fault injection: failing this call");
            return Err(a.fault.error.to_io());
        }
    }
    Ok(())
}

/// Opens `path` for positioned reads and writes, creating it; `truncate` empties it.
pub(crate) fn open_rw(path: &Path, truncate: bool) -> io::Result<File> {
    check(FailPoint::SegmentCreate, path)?;
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(truncate)
        .open(path)
}

/// Reopens an existing file for positioned reads and writes (fail point
/// segment-create); a missing file is an error, not created.
pub(crate) fn reopen_rw(path: &Path) -> io::Result<File> {
    check(FailPoint::SegmentCreate, path)?;
    OpenOptions::new().read(true).write(true).open(path)
}

/// Writes all of `buf` at `position`. An injected failure first writes the
/// first half of `buf`, as a disk filling up mid-write does.
pub(crate) fn write_all_at(
    point: FailPoint,
    file: &File,
    path: &Path,
    buf: &[u8],
    position: u64,
) -> io::Result<()> {
    if let Err(e) = check(point, path) {
        let half = buf.get(..buf.len() / 2).unwrap_or_default();
        file.write_all_at(half, position)?;
        return Err(e);
    }
    file.write_all_at(buf, position)
}

/// Creates (or replaces) `path` holding `bytes`, at fail point [`FailPoint::AuxWrite`].
pub(crate) fn write_new(path: &Path, bytes: &[u8]) -> io::Result<File> {
    check(FailPoint::AuxWrite, path)?;
    let file = File::create(path)?;
    file.write_all_at(bytes, 0)?;
    Ok(file)
}

/// Appends `bytes` to `path`, creating it, at fail point [`FailPoint::AuxWrite`].
pub(crate) fn append_aux(path: &Path, bytes: &[u8]) -> io::Result<()> {
    check(FailPoint::AuxWrite, path)?;
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(bytes)
}

/// Replaces `path` with `bytes` atomically and durably: writes and fsyncs
/// `<path>.tmp`, renames it over `path`, fsyncs the directory. For small
/// files such as checkpoints; fail points aux-write, aux-sync, rename and
/// dir-sync.
pub fn replace_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = std::path::PathBuf::from(format!("{}.tmp", path.display()));
    let file = write_new(&tmp, bytes)?;
    sync_aux(&file, &tmp)?;
    rename(&tmp, path)?;
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir),
        _ => Ok(()),
    }
}

/// fsyncs a file's data (fdatasync).
pub(crate) fn sync_data(file: &File, path: &Path) -> io::Result<()> {
    check(FailPoint::SegmentSync, path)?;
    file.sync_data()
}

/// fsyncs a compaction output or checkpoint file, data and metadata.
pub(crate) fn sync_aux(file: &File, path: &Path) -> io::Result<()> {
    check(FailPoint::AuxSync, path)?;
    file.sync_all()
}

/// fsyncs a directory, making file creations, renames and removals in it durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    check(FailPoint::DirSync, dir)?;
    File::open(dir)?.sync_all()
}

/// fsyncs the metadata quorum's Raft log (fail point `quorum-log-sync`).
pub(crate) fn sync_quorum_log(file: &File, path: &Path) -> io::Result<()> {
    check(FailPoint::QuorumLogSync, path)?;
    file.sync_data()
}

/// fsyncs the metadata quorum's directory (fail point `quorum-log-sync`).
pub(crate) fn sync_quorum_dir(dir: &Path) -> io::Result<()> {
    check(FailPoint::QuorumLogSync, dir)?;
    File::open(dir)?.sync_all()
}

/// Cuts (or extends) a file to `len` bytes.
pub(crate) fn set_len(file: &File, path: &Path, len: u64) -> io::Result<()> {
    check(FailPoint::Truncate, path)?;
    file.set_len(len)
}

/// Renames `from` to `to`.
pub(crate) fn rename(from: &Path, to: &Path) -> io::Result<()> {
    check(FailPoint::Rename, to)?;
    std::fs::rename(from, to)
}

/// Removes a file; one already missing is not an error.
pub(crate) fn remove_file(path: &Path) -> io::Result<()> {
    check(FailPoint::Remove, path)?;
    match std::fs::remove_file(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_points_errors_and_triggers() {
        let faults =
            parse_spec("segment-write=enospc@after:3, segment-sync=eio@next:1,remove=eio").unwrap();
        assert_eq!(
            faults,
            vec![
                Fault::new(
                    FailPoint::SegmentWrite,
                    InjectedError::NoSpace,
                    Trigger::After(3)
                ),
                Fault::new(FailPoint::SegmentSync, InjectedError::Eio, Trigger::Next(1)),
                Fault::new(FailPoint::Remove, InjectedError::Eio, Trigger::Always),
            ]
        );
    }

    #[test]
    fn rejects_unknown_points_errors_and_triggers_with_a_message() {
        assert!(parse_spec("disk=enospc")
            .unwrap_err()
            .contains("segment-write"));
        assert!(parse_spec("segment-write=full")
            .unwrap_err()
            .contains("enospc"));
        assert!(parse_spec("segment-write=eio@sometimes")
            .unwrap_err()
            .contains("after:N"));
        assert!(parse_spec("segment-write").is_err());
        assert!(parse_spec("segment-write=eio@after:x").is_err());
    }

    #[test]
    fn replace_file_swaps_contents_and_a_failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint");
        replace_file(&path, b"one").unwrap();
        replace_file(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        arm(Fault::new(FailPoint::Rename, InjectedError::Eio, Trigger::Always).under(dir.path()));
        assert!(replace_file(&path, b"three").is_err());
        disarm(Some(dir.path()));
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
    }

    #[test]
    fn after_and_next_triggers_count_calls_on_matching_paths_only() {
        let dir = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        arm(
            Fault::new(FailPoint::Rename, InjectedError::NoSpace, Trigger::After(2))
                .under(dir.path()),
        );
        arm(Fault::new(FailPoint::Remove, InjectedError::Eio, Trigger::Next(1)).under(dir.path()));
        assert!(check(FailPoint::Rename, &a).is_ok());
        assert!(check(FailPoint::Rename, &other.path().join("a")).is_ok());
        assert!(check(FailPoint::Rename, &a).is_ok());
        let err = check(FailPoint::Rename, &a).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(28));
        assert!(check(FailPoint::Rename, &a).is_err());
        assert_eq!(
            check(FailPoint::Remove, &a).unwrap_err().raw_os_error(),
            Some(5)
        );
        assert!(check(FailPoint::Remove, &a).is_ok());
        disarm(Some(dir.path()));
        assert!(check(FailPoint::Rename, &a).is_ok());
    }
}
