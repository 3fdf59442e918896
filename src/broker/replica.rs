//! The replica layer's bookkeeping for one partition: its replicas, ISR and
//! epochs as the metadata image gives them, and, while this broker leads
//! it, what each follower has fetched. Pure: no I/O, times passed in.
//!
//! Kafka's rules (`Partition`, `Replica` in Kafka's broker):
//! - The high watermark is the smallest log end offset over the ISR (the
//!   leader's own included), counting members being added by a pending ISR
//!   change; it does not advance while that set is smaller than
//!   `min.insync.replicas`, nor while a member's position is unknown (a
//!   follower that has not fetched since this broker became leader).
//! - A follower is caught up when a fetch reaches the leader's log end, or
//!   reaches the end the leader had at the follower's previous fetch; it
//!   leaves the ISR once it has not been caught up for
//!   `replica.lag.time.max.ms`.
//! - A follower outside the ISR rejoins once its log end has reached the
//!   high watermark and the start of the leader's current epoch.
//! - The leader never changes the ISR itself: it asks the controller
//!   (AlterPartition) and one change is in flight at a time; the image
//!   brings the result.

use std::collections::HashMap;

/// How long an unanswered ISR change blocks the next one.
pub const ISR_CHANGE_RETRY_MS: i64 = 5_000;
/// How long a refused ISR change blocks the next one.
pub const ISR_REFUSED_BACKOFF_MS: i64 = 1_000;

/// What the leader knows of one follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerState {
    /// The follower's log end offset (its last fetch offset); -1 unknown.
    pub log_end: i64,
    /// When the follower was last caught up (monotonic ms).
    pub last_caught_up_ms: i64,
    /// The leader's log end offset at the follower's previous fetch.
    pub leader_end_at_last_fetch: i64,
    /// When the follower last fetched.
    pub last_fetch_ms: i64,
}

/// An ISR change the leader has asked the controller for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingIsr {
    pub isr: Vec<i32>,
    pub partition_epoch: i32,
    pub sent_ms: i64,
}

/// One partition's replication state on this broker.
#[derive(Debug, Clone, Default)]
pub struct ReplicaSet {
    /// This broker.
    pub node: i32,
    /// -1: no leader.
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub min_isr: usize,
    /// The leader's log end offset when it became leader: followers must
    /// reach it to join the ISR.
    pub epoch_start_offset: i64,
    pub followers: HashMap<i32, FollowerState>,
    pub pending: Option<PendingIsr>,
    /// When the controller last refused an ISR change (monotonic ms).
    pub refused_ms: Option<i64>,
    /// Whether the image has given this partition a registration yet.
    pub registered: bool,
}

/// What a new registration changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Registered {
    /// This broker leads now and did not (or leads at a new epoch).
    pub became_leader: bool,
    /// The leader or leader epoch changed.
    pub epoch_changed: bool,
    /// The first registration since the partition was opened.
    pub first: bool,
}

impl ReplicaSet {
    /// Takes a registration from the metadata image; `node` is this broker,
    /// `log_end` the local log end offset, `now` monotonic ms.
    #[allow(clippy::too_many_arguments)]
    pub fn register(
        &mut self,
        node: i32,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        replicas: &[i32],
        isr: &[i32],
        min_isr: usize,
        log_end: i64,
        now: i64,
    ) -> Registered {
        let first = !self.registered;
        let epoch_changed = first || leader != self.leader || leader_epoch != self.leader_epoch;
        let became_leader = leader == node && epoch_changed;
        self.registered = true;
        self.node = node;
        self.leader = leader;
        self.leader_epoch = leader_epoch;
        self.min_isr = min_isr.max(1);
        if partition_epoch != self.partition_epoch || first {
            self.pending = None;
        }
        self.partition_epoch = partition_epoch;
        self.replicas = replicas.to_vec();
        self.isr = isr.to_vec();
        if became_leader {
            self.epoch_start_offset = log_end;
            // Positions are unknown until each follower fetches; ISR
            // members get a full lag window to do so.
            self.followers = replicas
                .iter()
                .filter(|r| **r != node)
                .map(|r| {
                    (
                        *r,
                        FollowerState {
                            log_end: -1,
                            last_caught_up_ms: if isr.contains(r) { now } else { 0 },
                            leader_end_at_last_fetch: -1,
                            last_fetch_ms: 0,
                        },
                    )
                })
                .collect();
        } else if leader != node {
            self.followers.clear();
        } else {
            // Replicas may have been added or removed.
            self.followers.retain(|r, _| replicas.contains(r));
            for r in replicas.iter().filter(|r| **r != node) {
                self.followers.entry(*r).or_insert(FollowerState {
                    log_end: -1,
                    last_caught_up_ms: 0,
                    leader_end_at_last_fetch: -1,
                    last_fetch_ms: 0,
                });
            }
        }
        Registered {
            became_leader,
            epoch_changed,
            first,
        }
    }

    pub fn is_leader(&self, node: i32) -> bool {
        self.leader == node && self.leader >= 0
    }

    /// The ISR counting members a pending change adds (Kafka's "maximal
    /// ISR": a shrink counts only once committed, an expansion at once).
    pub fn maximal_isr(&self) -> Vec<i32> {
        let mut isr = self.isr.clone();
        if let Some(p) = &self.pending {
            for r in &p.isr {
                if !isr.contains(r) {
                    isr.push(*r);
                }
            }
        }
        isr
    }

    /// The high watermark the leader may move to, given its own log end;
    /// `None` when it may not move (not leader, too few in sync, a
    /// member's position unknown).
    pub fn high_watermark(&self, node: i32, leader_end: i64) -> Option<i64> {
        if !self.is_leader(node) {
            return None;
        }
        let isr = self.maximal_isr();
        if isr.len() < self.min_isr {
            return None;
        }
        let mut hw = leader_end;
        for r in isr.iter().filter(|r| **r != node) {
            let end = self.followers.get(r).map_or(-1, |f| f.log_end);
            if end < 0 {
                return None;
            }
            hw = hw.min(end);
        }
        Some(hw)
    }

    /// Records a fetch by follower `replica` at `fetch_offset`; returns the
    /// ISR to ask for when the follower should join it.
    pub fn follower_fetched(
        &mut self,
        replica: i32,
        fetch_offset: i64,
        leader_end: i64,
        high_watermark: i64,
        now: i64,
    ) -> Option<Vec<i32>> {
        let f = self.followers.get_mut(&replica)?;
        if fetch_offset >= leader_end {
            f.last_caught_up_ms = now;
        } else if f.leader_end_at_last_fetch >= 0 && fetch_offset >= f.leader_end_at_last_fetch {
            f.last_caught_up_ms = f.last_fetch_ms;
        }
        f.log_end = fetch_offset;
        f.leader_end_at_last_fetch = leader_end;
        f.last_fetch_ms = now;
        let joins = !self.isr.contains(&replica)
            && fetch_offset >= high_watermark
            && fetch_offset >= self.epoch_start_offset;
        if joins && self.may_propose(now) {
            let mut isr = self.isr.clone();
            isr.push(replica);
            return Some(isr);
        }
        None
    }

    /// The ISR without the followers that have not been caught up for
    /// `lag_ms`; `None` when no one lags (or a change is in flight).
    pub fn shrunk_isr(&self, node: i32, now: i64, lag_ms: i64) -> Option<Vec<i32>> {
        if !self.is_leader(node) || !self.may_propose(now) {
            return None;
        }
        let lagging = |r: &i32| {
            *r != node
                && self
                    .followers
                    .get(r)
                    .is_none_or(|f| now.saturating_sub(f.last_caught_up_ms) > lag_ms)
        };
        if !self.isr.iter().any(lagging) {
            return None;
        }
        Some(self.isr.iter().copied().filter(|r| !lagging(r)).collect())
    }

    fn may_propose(&self, now: i64) -> bool {
        self.pending
            .as_ref()
            .is_none_or(|p| now.saturating_sub(p.sent_ms) > ISR_CHANGE_RETRY_MS)
            && self
                .refused_ms
                .is_none_or(|t| now.saturating_sub(t) > ISR_REFUSED_BACKOFF_MS)
    }

    /// Notes that `isr` was asked for.
    pub fn proposed(&mut self, isr: Vec<i32>, now: i64) {
        self.pending = Some(PendingIsr {
            isr,
            partition_epoch: self.partition_epoch,
            sent_ms: now,
        });
    }

    /// Forgets the ISR change asked for at `partition_epoch`: the
    /// controller refused it, so the committed ISR is the one that counts
    /// (a joining member no longer holds the high watermark back).
    /// Returns whether there was such a change.
    pub fn refused(&mut self, partition_epoch: i32, now: i64) -> bool {
        let matches = self
            .pending
            .as_ref()
            .is_some_and(|p| p.partition_epoch == partition_epoch);
        if matches {
            self.pending = None;
            self.refused_ms = Some(now);
        }
        matches
    }

    /// Whether a follower the leader reckons with is `replica` (an assigned
    /// replica other than the leader).
    pub fn is_follower(&self, replica: i32) -> bool {
        self.followers.contains_key(&replica)
    }
}

/// Milliseconds on a monotonic clock (since the first call).
pub fn mono_ms() -> i64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(std::time::Instant::now);
    i64::try_from(start.elapsed().as_millis()).unwrap_or(i64::MAX)
}

/// Where a follower must truncate its log after the leader named
/// `(leader_epoch, leader_end)` as the end of the epochs they share
/// (Fetch's diverging epoch, KIP-320), given the follower's own answer for
/// that epoch `(own_epoch, own_end)` (its `end_offset_for_epoch`), its log
/// end and high watermark.
pub fn truncation_offset(
    leader_epoch: i32,
    leader_end: i64,
    own: (i32, i64),
    log_end: i64,
    high_watermark: i64,
) -> i64 {
    let target = if leader_end < 0 {
        // The leader knows nothing of the epoch: only what was committed
        // is certainly shared.
        high_watermark
    } else if leader_epoch < 0 || own.0 < 0 {
        leader_end
    } else {
        // Same epoch: both ends bound the shared prefix. An older epoch of
        // ours: the next fetch narrows further.
        leader_end.min(own.1)
    };
    target.min(log_end).max(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn leader_of_three(min_isr: usize) -> ReplicaSet {
        let mut set = ReplicaSet::default();
        let r = set.register(1, 1, 3, 7, &[1, 2, 3], &[1, 2, 3], min_isr, 100, 1_000);
        assert!(r.became_leader && r.first);
        set
    }

    #[test]
    fn the_high_watermark_waits_for_every_isr_member() {
        let mut set = leader_of_three(1);
        assert_eq!(set.high_watermark(1, 120), None, "positions unknown");
        set.follower_fetched(2, 110, 120, 100, 1_010);
        assert_eq!(set.high_watermark(1, 120), None, "3 has not fetched");
        set.follower_fetched(3, 120, 120, 100, 1_020);
        assert_eq!(set.high_watermark(1, 120), Some(110));
        set.follower_fetched(2, 120, 120, 110, 1_030);
        assert_eq!(set.high_watermark(1, 125), Some(120));
        assert_eq!(set.high_watermark(2, 125), None, "only the leader moves it");
    }

    #[test]
    fn a_refused_expansion_stops_holding_the_high_watermark_back() {
        let mut set = ReplicaSet::default();
        set.register(1, 1, 3, 7, &[1, 2], &[1], 1, 100, 0);
        assert_eq!(set.high_watermark(1, 150), Some(150));
        // 2 caught up and the leader asked for it to join; then 2 died.
        set.proposed(vec![1, 2], 10);
        set.follower_fetched(2, 100, 100, -1, 10);
        assert_eq!(
            set.high_watermark(1, 150),
            Some(100),
            "a joining member counts"
        );
        assert!(!set.refused(6, 20), "another change's answer");
        assert!(set.refused(7, 20));
        assert_eq!(set.high_watermark(1, 150), Some(150));
        // Not asked again at once: the refusal holds the next one back.
        assert_eq!(set.follower_fetched(2, 150, 150, 150, 500), None);
        assert_eq!(
            set.follower_fetched(2, 150, 150, 150, 1_100),
            Some(vec![1, 2])
        );
    }

    #[test]
    fn min_insync_replicas_holds_the_high_watermark() {
        let mut set = ReplicaSet::default();
        set.register(1, 1, 3, 7, &[1, 2, 3], &[1], 2, 100, 0);
        assert_eq!(set.high_watermark(1, 150), None);
        set.register(1, 1, 3, 8, &[1, 2, 3], &[1], 1, 150, 0);
        assert_eq!(set.high_watermark(1, 150), Some(150));
    }

    #[test]
    fn a_lagging_follower_is_shrunk_out_and_a_caught_up_one_joins() {
        let mut set = leader_of_three(1);
        // 2 keeps up, 3 never fetches.
        for t in (1_000..40_000).step_by(500) {
            set.follower_fetched(2, 100, 100, 100, t);
        }
        assert_eq!(set.shrunk_isr(1, 40_000, 30_000), Some(vec![1, 2]));
        set.proposed(vec![1, 2], 40_000);
        assert_eq!(
            set.shrunk_isr(1, 41_000, 30_000),
            None,
            "one change at a time"
        );
        // The image brings the change.
        set.register(1, 1, 3, 8, &[1, 2, 3], &[1, 2], 1, 100, 42_000);
        assert!(set.pending.is_none());
        // 3 returns behind the high watermark: not yet.
        assert_eq!(set.follower_fetched(3, 50, 100, 100, 43_000), None);
        assert_eq!(
            set.follower_fetched(3, 100, 100, 100, 43_500),
            Some(vec![1, 2, 3])
        );
    }

    #[test]
    fn a_follower_behind_the_epoch_start_does_not_join() {
        let mut set = ReplicaSet::default();
        set.register(1, 1, 4, 1, &[1, 2], &[1], 1, 500, 0);
        // The high watermark may be lower than where this epoch began.
        assert_eq!(set.follower_fetched(2, 400, 520, 400, 10), None);
        assert_eq!(set.follower_fetched(2, 500, 520, 400, 20), Some(vec![1, 2]));
    }

    #[test]
    fn a_follower_that_reaches_the_previous_fetch_end_counts_as_caught_up() {
        let mut set = leader_of_three(1);
        set.follower_fetched(2, 90, 100, 90, 5_000);
        // The leader moved on to 130, but 2 reached 100 (the end at its
        // previous fetch, at 5_000): caught up as of then.
        set.follower_fetched(2, 100, 130, 90, 20_000);
        assert_eq!(set.followers[&2].last_caught_up_ms, 5_000);
    }

    #[test]
    fn an_expansion_counts_at_once_and_a_shrink_only_when_committed() {
        let mut set = ReplicaSet::default();
        set.register(1, 1, 1, 1, &[1, 2, 3], &[1, 2], 1, 100, 0);
        set.follower_fetched(2, 100, 100, 100, 1);
        set.follower_fetched(3, 60, 100, 100, 1);
        assert_eq!(set.high_watermark(1, 100), Some(100));
        set.proposed(vec![1, 2, 3], 2);
        assert_eq!(
            set.high_watermark(1, 100),
            Some(60),
            "3 counts while joining"
        );
        set.register(1, 1, 1, 2, &[1, 2, 3], &[1, 2, 3], 1, 100, 3);
        set.proposed(vec![1, 2], 4);
        assert_eq!(
            set.high_watermark(1, 100),
            Some(60),
            "3 counts until removed"
        );
    }

    #[test]
    fn losing_leadership_forgets_the_followers() {
        let mut set = leader_of_three(1);
        set.follower_fetched(2, 100, 100, 100, 1);
        let r = set.register(1, 2, 4, 8, &[1, 2, 3], &[2, 3], 1, 100, 2);
        assert!(r.epoch_changed && !r.became_leader);
        assert!(set.followers.is_empty());
        assert_eq!(set.high_watermark(1, 100), None);
        assert!(!set.is_follower(2));
    }
}
