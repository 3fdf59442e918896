//! The vote file (`raft-vote`): two fixed-size slots overwritten in place,
//! alternately, each holding a sealed record with a sequence number.
//!
//! Saving a vote costs one write and one fsync, not the three steps of a
//! replaced file (write, fsync, rename, directory fsync): elections and a
//! single voter's start save the vote twice in a row. A write torn by a
//! crash damages only the slot being written; the other still holds the
//! previous vote, so reading takes the valid slot with the higher sequence.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::codec::{seal, unseal, Reader, Writer};
use super::files::{corrupt, read_optional};
use super::QuorumVote;
use crate::error::{Result, StorageError};
use crate::io::{self as fio, FailPoint};

pub(crate) const VOTE_FILE: &str = "raft-vote";
const VOTE_MAGIC: &[u8; 4] = b"WQVT";
/// Bytes per slot: a length byte, the sealed record (13 + 25 bytes), zeros.
const SLOT_BYTES: usize = 64;

/// The open vote file and the last vote saved or read.
#[derive(Debug)]
pub struct VoteFile {
    path: PathBuf,
    file: File,
    /// Sequence number of the newest valid slot (0: none yet).
    seq: u64,
    vote: Option<QuorumVote>,
}

fn encode_slot(seq: u64, vote: &QuorumVote) -> Vec<u8> {
    let mut w = Writer::default();
    w.u64(seq);
    w.u64(vote.term);
    w.u64(vote.node_id);
    w.u8(u8::from(vote.committed));
    let sealed = seal(VOTE_MAGIC, &w.buf);
    let mut slot = vec![0u8; SLOT_BYTES];
    if let Some(first) = slot.first_mut() {
        *first = u8::try_from(sealed.len()).unwrap_or(0);
    }
    if let Some(dest) = slot.get_mut(1..1 + sealed.len()) {
        dest.copy_from_slice(&sealed);
    }
    slot
}

fn decode_slot(slot: &[u8]) -> Option<(u64, QuorumVote)> {
    let len = usize::from(*slot.first()?);
    let body = unseal(VOTE_MAGIC, slot.get(1..1 + len)?).ok()?;
    let mut r = Reader::new(body);
    let seq = r.u64()?;
    let vote = QuorumVote {
        term: r.u64()?,
        node_id: r.u64()?,
        committed: r.u8()? != 0,
    };
    r.is_empty().then_some((seq, vote))
}

impl VoteFile {
    /// Opens (creating) the vote file in `dir` and reads the newest valid
    /// slot. Returns whether the file was created: the caller must fsync
    /// the directory before relying on it (see `QuorumDir::open`).
    pub(crate) fn open_unsynced(dir: &Path) -> Result<(VoteFile, bool)> {
        let path = dir.join(VOTE_FILE);
        let existing = read_optional(&path)?;
        let mut best: Option<(u64, QuorumVote)> = None;
        if let Some(bytes) = &existing {
            for slot in bytes.chunks(SLOT_BYTES) {
                if let Some((seq, vote)) = decode_slot(slot) {
                    if best.is_none_or(|(s, _)| seq > s) {
                        best = Some((seq, vote));
                    }
                }
            }
            if best.is_none() && !bytes.is_empty() {
                return Err(corrupt(&path, "no valid vote in either slot"));
            }
        }
        let file = fio::open_rw(&path, false)
            .map_err(|e| StorageError::io(format!("opening {}", path.display()), e))?;
        Ok((
            VoteFile {
                path,
                file,
                seq: best.map_or(0, |(s, _)| s),
                vote: best.map(|(_, v)| v),
            },
            existing.is_none(),
        ))
    }

    /// Opens the vote file, making its creation durable.
    pub fn open(dir: &Path) -> Result<VoteFile> {
        let (file, created) = VoteFile::open_unsynced(dir)?;
        if created {
            fio::sync_quorum_dir(dir)
                .map_err(|e| StorageError::io(format!("syncing {}", dir.display()), e))?;
        }
        Ok(file)
    }

    /// The last vote saved or read.
    pub fn vote(&self) -> Option<QuorumVote> {
        self.vote
    }

    /// Saves `vote` durably in the slot not holding the newest vote. On
    /// failure the previous vote stays readable.
    pub fn save(&mut self, vote: &QuorumVote) -> Result<()> {
        let seq = self.seq.saturating_add(1);
        let position = (seq % 2) * SLOT_BYTES as u64;
        fio::write_all_at(
            FailPoint::AuxWrite,
            &self.file,
            &self.path,
            &encode_slot(seq, vote),
            position,
        )
        .and_then(|_| fio::sync_aux(&self.file, &self.path))
        .map_err(|e| StorageError::io(format!("writing {}", self.path.display()), e))?;
        self.seq = seq;
        self.vote = Some(*vote);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::io::{arm, disarm, Fault, InjectedError, Trigger};

    fn vote(term: u64, node_id: u64, committed: bool) -> QuorumVote {
        QuorumVote {
            term,
            node_id,
            committed,
        }
    }

    #[test]
    fn the_last_saved_vote_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = VoteFile::open(dir.path()).unwrap();
        assert_eq!(f.vote(), None);
        f.save(&vote(1, 2, false)).unwrap();
        f.save(&vote(1, 2, true)).unwrap();
        f.save(&vote(2, 3, false)).unwrap();
        drop(f);
        let mut f = VoteFile::open(dir.path()).unwrap();
        assert_eq!(f.vote(), Some(vote(2, 3, false)));
        f.save(&vote(3, 1, true)).unwrap();
        drop(f);
        assert_eq!(
            VoteFile::open(dir.path()).unwrap().vote(),
            Some(vote(3, 1, true))
        );
    }

    #[test]
    fn a_torn_vote_write_is_an_error_and_the_previous_vote_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = VoteFile::open(dir.path()).unwrap();
        f.save(&vote(4, 1, true)).unwrap();
        arm(Fault::new(FailPoint::AuxWrite, InjectedError::Eio, Trigger::Always).under(dir.path()));
        let err = f.save(&vote(5, 2, false));
        disarm(Some(dir.path()));
        assert!(err.is_err());
        assert_eq!(f.vote(), Some(vote(4, 1, true)));
        drop(f);
        let mut f = VoteFile::open(dir.path()).unwrap();
        assert_eq!(f.vote(), Some(vote(4, 1, true)), "the torn slot is ignored");
        f.save(&vote(5, 2, false)).unwrap();
        drop(f);
        assert_eq!(
            VoteFile::open(dir.path()).unwrap().vote(),
            Some(vote(5, 2, false))
        );
    }

    #[test]
    fn a_vote_file_with_no_valid_slot_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = VoteFile::open(dir.path()).unwrap();
        f.save(&vote(1, 1, true)).unwrap();
        drop(f);
        std::fs::write(dir.path().join(VOTE_FILE), [7u8; 128]).unwrap();
        let err = VoteFile::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("no valid vote"), "{err}");
    }
}
