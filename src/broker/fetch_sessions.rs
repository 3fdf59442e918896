//! Fetch sessions (KIP-227): the broker-wide cache of incremental fetch
//! sessions, sans-io (the caller passes the time in milliseconds).
//!
//! A full fetch (epoch 0) may open a session holding the partitions it
//! named, what was asked of each and what was last answered for it. Later
//! fetches of that session (epoch 1, 2, ...) name only the partitions whose
//! request changed, and forget some; the answer carries only partitions
//! with something new (records, a moved high watermark, log start offset
//! or last stable offset, an error, a preferred read replica), while the
//! session remembers the rest. Epoch -1 asks for no session at all.
//!
//! The cache holds at most `max.incremental.fetch.session.cache.slots`
//! sessions. When it is full, a new session may take the slot of one that
//! has not been used for [`EVICTION_MS`]; failing that, a follower's
//! session may take a consumer's, and any new session may take the slot of
//! a smaller one created more than [`EVICTION_MS`] ago. Otherwise the full
//! fetch is answered without a session (session id 0), and the client
//! keeps sending full fetches. Kafka shards this cache; Wharf keeps one.

use std::collections::HashMap;
use std::sync::Arc;

use uuid::Uuid;

/// The session id of "no session".
pub const INVALID_SESSION_ID: i32 = 0;
/// The epoch of a full fetch that opens a session.
pub const INITIAL_EPOCH: i32 = 0;
/// The epoch of a fetch that wants no session (and closes the one named).
pub const FINAL_EPOCH: i32 = -1;
/// How long a session must be unused before any new session may take its
/// slot, and how old one must be before a larger session may (Kafka's
/// fixed two minutes).
pub const EVICTION_MS: u64 = 120_000;

/// Kafka's default `max.incremental.fetch.session.cache.slots`.
pub const DEFAULT_SLOTS: usize = 1000;

/// The epoch after `epoch`: 1, 2, ... wrapping to 1 after `i32::MAX`.
pub fn next_epoch(epoch: i32) -> i32 {
    if epoch < 0 {
        // The final epoch stays final.
        FINAL_EPOCH
    } else if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

/// How a session names its topics: by id (Fetch v13 and later) or by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TopicKey {
    Id(Uuid),
    Name(Arc<str>),
}

/// One partition of a session.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartitionKey {
    pub topic: TopicKey,
    pub partition: i32,
}

/// What a fetch asks of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionRequest {
    pub fetch_offset: i64,
    pub partition_max_bytes: i32,
    pub current_leader_epoch: i32,
    pub last_fetched_epoch: i32,
    pub log_start_offset: i64,
}

/// What an answer said of one partition, as far as the session cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionAnswer {
    pub record_bytes: usize,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub last_stable_offset: i64,
    pub error_code: i16,
    /// A preferred read replica was named (KIP-392).
    pub preferred_replica: bool,
    /// A diverging epoch was named (follower fetches, KIP-320).
    pub diverging: bool,
}

#[derive(Debug, Clone)]
struct CachedPartition {
    request: PartitionRequest,
    /// What the last answer that carried this partition said; -1 before
    /// any (so the first incremental answer carries it).
    high_watermark: i64,
    log_start_offset: i64,
    last_stable_offset: i64,
    /// The partition's place in the session's order: partitions that
    /// returned records move to the back, so a response that fills up
    /// does not starve the partitions behind them.
    order: u64,
}

impl CachedPartition {
    fn new(request: PartitionRequest, order: u64) -> Self {
        CachedPartition {
            request,
            high_watermark: -1,
            log_start_offset: -1,
            last_stable_offset: -1,
            order,
        }
    }

    /// Whether the answer must carry this partition; remembers what it
    /// says.
    fn answer(&mut self, answer: &PartitionAnswer) -> bool {
        let mut must = answer.record_bytes > 0 || answer.preferred_replica || answer.diverging;
        if self.high_watermark != answer.high_watermark {
            must = true;
            self.high_watermark = answer.high_watermark;
        }
        if self.log_start_offset != answer.log_start_offset {
            must = true;
            self.log_start_offset = answer.log_start_offset;
        }
        if self.last_stable_offset != answer.last_stable_offset {
            must = true;
            self.last_stable_offset = answer.last_stable_offset;
        }
        if answer.error_code != 0 {
            // Forget the high watermark, so the partition is sent again
            // when the error clears.
            self.high_watermark = -1;
            must = true;
        }
        must
    }
}

#[derive(Debug)]
struct Session {
    privileged: bool,
    uses_topic_ids: bool,
    created_ms: u64,
    last_used_ms: u64,
    /// The epoch the next request of this session must carry.
    epoch: i32,
    partitions: HashMap<PartitionKey, CachedPartition>,
    next_order: u64,
}

impl Session {
    fn push(&mut self, key: PartitionKey, request: PartitionRequest) -> &mut CachedPartition {
        let order = self.next_order;
        self.next_order += 1;
        self.partitions
            .entry(key)
            .or_insert_with(|| CachedPartition::new(request, order))
    }

    /// The session's partitions in their order.
    fn ordered(&self) -> Vec<(PartitionKey, PartitionRequest)> {
        let mut all: Vec<_> = self
            .partitions
            .iter()
            .map(|(k, p)| (p.order, k.clone(), p.request))
            .collect();
        all.sort_unstable_by_key(|(order, _, _)| *order);
        all.into_iter().map(|(_, k, r)| (k, r)).collect()
    }
}

/// A fetch session error, answered at the top level with no partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    /// FETCH_SESSION_ID_NOT_FOUND (70).
    NotFound,
    /// INVALID_FETCH_SESSION_EPOCH (71).
    InvalidEpoch,
    /// FETCH_SESSION_TOPIC_ID_ERROR (106): the session names topics by id
    /// and the request version cannot, or the other way round.
    TopicIdMismatch,
}

impl SessionError {
    pub fn code(self) -> i16 {
        match self {
            SessionError::NotFound => 70,
            SessionError::InvalidEpoch => 71,
            SessionError::TopicIdMismatch => 106,
        }
    }
}

/// What a fetch request is, once its session id and epoch are read.
#[derive(Debug, PartialEq, Eq)]
pub enum Context {
    /// Epoch -1: read the partitions the request names; session id 0.
    Sessionless,
    /// Epoch 0: read the partitions the request names, then try to open a
    /// session of them ([`FetchSessionCache::create`]).
    Full,
    /// An incremental fetch of session `id`: read these partitions (the
    /// whole session, in its order), then pass the answers through
    /// [`FetchSessionCache::answer_incremental`].
    Incremental {
        id: i32,
        epoch: i32,
        partitions: Vec<(PartitionKey, PartitionRequest)>,
    },
    /// Answer with this error and nothing else.
    Error(SessionError),
}

/// The broker's fetch sessions.
#[derive(Debug)]
pub struct FetchSessionCache {
    max_slots: usize,
    sessions: HashMap<i32, Session>,
    rng: fastrand::Rng,
    evictions: u64,
}

impl FetchSessionCache {
    pub fn new(max_slots: usize) -> Self {
        Self::with_rng(max_slots, fastrand::Rng::new())
    }

    /// A cache drawing session ids from `rng` (tests seed it).
    pub fn with_rng(max_slots: usize, rng: fastrand::Rng) -> Self {
        FetchSessionCache {
            max_slots,
            sessions: HashMap::new(),
            rng,
            evictions: 0,
        }
    }

    /// Sessions held now.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Partitions held by all sessions.
    pub fn partitions(&self) -> usize {
        self.sessions.values().map(|s| s.partitions.len()).sum()
    }

    /// Sessions evicted to make room for new ones since the start.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Reads a request's session id and epoch and applies what it changes:
    /// a full or sessionless fetch closes the session it names; an
    /// incremental one adds, updates and forgets partitions of its session
    /// and moves it to the next epoch.
    pub fn context(
        &mut self,
        session_id: i32,
        epoch: i32,
        uses_topic_ids: bool,
        requested: &[(PartitionKey, PartitionRequest)],
        forgotten: &[PartitionKey],
        now_ms: u64,
    ) -> Context {
        if epoch == INITIAL_EPOCH || epoch == FINAL_EPOCH {
            if session_id != INVALID_SESSION_ID {
                self.sessions.remove(&session_id);
            }
            return if epoch == FINAL_EPOCH {
                Context::Sessionless
            } else {
                Context::Full
            };
        }
        let Some(session) = self.sessions.get_mut(&session_id) else {
            return Context::Error(SessionError::NotFound);
        };
        if session.epoch != epoch {
            return Context::Error(SessionError::InvalidEpoch);
        }
        if session.uses_topic_ids != uses_topic_ids {
            return Context::Error(SessionError::TopicIdMismatch);
        }
        for (key, request) in requested {
            match session.partitions.get_mut(key) {
                Some(cached) => cached.request = *request,
                None => {
                    session.push(key.clone(), *request);
                }
            }
        }
        for key in forgotten {
            session.partitions.remove(key);
        }
        if session.partitions.is_empty() {
            self.sessions.remove(&session_id);
            return Context::Sessionless;
        }
        session.last_used_ms = now_ms;
        session.epoch = next_epoch(session.epoch);
        Context::Incremental {
            id: session_id,
            epoch: session.epoch,
            partitions: session.ordered(),
        }
    }

    /// After a full fetch: opens a session of the partitions answered
    /// (with what was asked and answered), evicting another if the cache is
    /// full and the rules allow. Returns its id, or 0 when there is no room.
    pub fn create(
        &mut self,
        privileged: bool,
        uses_topic_ids: bool,
        answered: &[(PartitionKey, PartitionRequest, PartitionAnswer)],
        now_ms: u64,
    ) -> i32 {
        if self.max_slots == 0 {
            return INVALID_SESSION_ID;
        }
        if self.sessions.len() >= self.max_slots
            && !self.try_evict(privileged, answered.len(), now_ms)
        {
            return INVALID_SESSION_ID;
        }
        let id = loop {
            let id = self.rng.i32(1..=i32::MAX);
            if !self.sessions.contains_key(&id) {
                break id;
            }
        };
        let mut session = Session {
            privileged,
            uses_topic_ids,
            created_ms: now_ms,
            last_used_ms: now_ms,
            epoch: next_epoch(INITIAL_EPOCH),
            partitions: HashMap::with_capacity(answered.len()),
            next_order: 0,
        };
        for (key, request, answer) in answered {
            session.push(key.clone(), *request).answer(answer);
        }
        self.sessions.insert(id, session);
        id
    }

    /// Makes room for a new session of `size` partitions, by Kafka's rules.
    fn try_evict(&mut self, privileged: bool, size: usize, now_ms: u64) -> bool {
        // The session unused longest, if it is stale.
        let stale = self
            .sessions
            .iter()
            .min_by_key(|(id, s)| (s.last_used_ms, **id))
            .filter(|(_, s)| now_ms.saturating_sub(s.last_used_ms) > EVICTION_MS)
            .map(|(id, _)| *id);
        let victim = stale.or_else(|| {
            // Else the least valuable one the new session may evict:
            // (privileged, size, id) ordered, and only if the new one is
            // worth at least as much (its id counts as 0, below any).
            self.sessions
                .iter()
                .filter(|(_, s)| {
                    let old = now_ms.saturating_sub(s.created_ms) > EVICTION_MS;
                    old || (privileged && !s.privileged)
                })
                .min_by_key(|(id, s)| (s.privileged, s.partitions.len(), **id))
                .filter(|(_, s)| (privileged, size) > (s.privileged, s.partitions.len()))
                .map(|(id, _)| *id)
        });
        match victim {
            Some(id) => {
                tracing::debug!(session_id = id, "evicting a fetch session for a new one");
                self.sessions.remove(&id);
                self.evictions += 1;
                true
            }
            None => false,
        }
    }

    /// After an incremental fetch read its partitions: which answers must
    /// be sent (the others are left out), remembering what they said and
    /// moving partitions that returned records to the back of the session.
    /// `Err` when the session was closed or moved on meanwhile.
    pub fn answer_incremental(
        &mut self,
        id: i32,
        epoch: i32,
        answers: &[(PartitionKey, PartitionAnswer)],
    ) -> Result<Vec<bool>, SessionError> {
        let Some(session) = self.sessions.get_mut(&id) else {
            return Err(SessionError::NotFound);
        };
        if session.epoch != epoch {
            return Err(SessionError::InvalidEpoch);
        }
        let mut out = Vec::with_capacity(answers.len());
        for (key, answer) in answers {
            let order = session.next_order;
            let must = match session.partitions.get_mut(key) {
                Some(cached) => {
                    let must = cached.answer(answer);
                    if answer.record_bytes > 0 {
                        cached.order = order;
                    }
                    must
                }
                // Not in the session (cannot happen: the context listed
                // it): sent, so nothing is lost.
                None => true,
            };
            if answer.record_bytes > 0 {
                session.next_order += 1;
            }
            out.push(must);
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn key(name: &str, partition: i32) -> PartitionKey {
        PartitionKey {
            topic: TopicKey::Name(Arc::from(name)),
            partition,
        }
    }

    fn req(offset: i64) -> PartitionRequest {
        PartitionRequest {
            fetch_offset: offset,
            partition_max_bytes: 1 << 20,
            current_leader_epoch: -1,
            last_fetched_epoch: -1,
            log_start_offset: -1,
        }
    }

    fn ans(records: usize, hw: i64) -> PartitionAnswer {
        PartitionAnswer {
            record_bytes: records,
            high_watermark: hw,
            log_start_offset: 0,
            last_stable_offset: hw,
            error_code: 0,
            preferred_replica: false,
            diverging: false,
        }
    }

    fn cache(slots: usize) -> FetchSessionCache {
        FetchSessionCache::with_rng(slots, fastrand::Rng::with_seed(7))
    }

    /// Opens a session of `n` partitions of topic "t" at time `now`.
    fn open(cache: &mut FetchSessionCache, n: i32, now: u64) -> i32 {
        let answered: Vec<_> = (0..n).map(|p| (key("t", p), req(0), ans(0, 5))).collect();
        cache.create(false, false, &answered, now)
    }

    #[test]
    fn epoch_wraps_to_one_and_final_stays_final() {
        assert_eq!(next_epoch(0), 1);
        assert_eq!(next_epoch(41), 42);
        assert_eq!(next_epoch(i32::MAX), 1);
        assert_eq!(next_epoch(-1), -1);
    }

    #[test]
    fn full_fetch_opens_a_session_at_epoch_one() {
        let mut c = cache(10);
        assert_eq!(c.context(0, 0, false, &[], &[], 0), Context::Full);
        let id = open(&mut c, 3, 0);
        assert!(id > 0);
        assert_eq!(c.len(), 1);
        assert_eq!(c.partitions(), 3);
        match c.context(id, 1, false, &[], &[], 10) {
            Context::Incremental {
                id: got,
                epoch,
                partitions,
            } => {
                assert_eq!(got, id);
                assert_eq!(epoch, 2);
                let ps: Vec<i32> = partitions.iter().map(|(k, _)| k.partition).collect();
                assert_eq!(ps, vec![0, 1, 2]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_session_and_wrong_epoch_are_errors() {
        let mut c = cache(10);
        let id = open(&mut c, 1, 0);
        assert_eq!(
            c.context(id.wrapping_add(1), 1, false, &[], &[], 0),
            Context::Error(SessionError::NotFound)
        );
        // An incremental epoch with no session id.
        assert_eq!(
            c.context(0, 3, false, &[], &[], 0),
            Context::Error(SessionError::NotFound)
        );
        assert_eq!(
            c.context(id, 2, false, &[], &[], 0),
            Context::Error(SessionError::InvalidEpoch)
        );
        // A wrong epoch changes nothing: the right one still works.
        assert!(matches!(
            c.context(id, 1, false, &[], &[], 0),
            Context::Incremental { epoch: 2, .. }
        ));
        // ...and a replay of it is now the wrong one.
        assert_eq!(
            c.context(id, 1, false, &[], &[], 0),
            Context::Error(SessionError::InvalidEpoch)
        );
    }

    #[test]
    fn a_session_keeps_to_topic_ids_or_names() {
        let mut c = cache(10);
        let id = open(&mut c, 1, 0);
        assert_eq!(
            c.context(id, 1, true, &[], &[], 0),
            Context::Error(SessionError::TopicIdMismatch)
        );
    }

    #[test]
    fn full_or_final_fetch_closes_the_session_it_names() {
        let mut c = cache(10);
        let a = open(&mut c, 1, 0);
        let b = open(&mut c, 1, 0);
        assert_eq!(c.context(a, 0, false, &[], &[], 0), Context::Full);
        assert_eq!(c.context(b, -1, false, &[], &[], 0), Context::Sessionless);
        assert!(c.is_empty());
        assert_eq!(
            c.context(a, 1, false, &[], &[], 0),
            Context::Error(SessionError::NotFound)
        );
    }

    #[test]
    fn incremental_adds_updates_and_forgets() {
        let mut c = cache(10);
        let id = open(&mut c, 2, 0);
        let ctx = c.context(
            id,
            1,
            false,
            &[(key("t", 1), req(9)), (key("u", 0), req(4))],
            &[key("t", 0)],
            0,
        );
        let Context::Incremental { partitions, .. } = ctx else {
            panic!("{ctx:?}")
        };
        assert_eq!(
            partitions,
            vec![(key("t", 1), req(9)), (key("u", 0), req(4))]
        );
        // Forgetting the rest closes the session.
        let ctx = c.context(id, 2, false, &[], &[key("t", 1), key("u", 0)], 0);
        assert_eq!(ctx, Context::Sessionless);
        assert!(c.is_empty());
    }

    #[test]
    fn incremental_answers_carry_only_changes() {
        let mut c = cache(10);
        let id = open(&mut c, 3, 0);
        let Context::Incremental { epoch, .. } =
            c.context(id, 1, false, &[(key("t", 3), req(0))], &[], 0)
        else {
            panic!()
        };
        let mut moved = ans(0, 6);
        moved.last_stable_offset = 5;
        let mut failed = ans(0, 5);
        failed.error_code = 6;
        let answers = vec![
            (key("t", 0), ans(0, 5)), // nothing new
            (key("t", 1), moved),     // high watermark moved
            (key("t", 2), failed),    // an error
            (key("t", 3), ans(0, 5)), // new to the session: sent once
        ];
        assert_eq!(
            c.answer_incremental(id, epoch, &answers).unwrap(),
            vec![false, true, true, true]
        );
        let Context::Incremental { epoch, .. } = c.context(id, epoch, false, &[], &[], 0) else {
            panic!()
        };
        let mut lso = ans(0, 6);
        lso.last_stable_offset = 6;
        let answers = vec![
            (key("t", 0), ans(10, 5)), // records
            (key("t", 1), lso),        // last stable offset moved
            (key("t", 2), ans(0, 5)),  // error cleared: sent again
            (key("t", 3), ans(0, 5)),  // unchanged
        ];
        assert_eq!(
            c.answer_incremental(id, epoch, &answers).unwrap(),
            vec![true, true, true, false]
        );
        // The partition that returned records went to the back.
        let Context::Incremental { partitions, .. } = c.context(id, epoch, false, &[], &[], 0)
        else {
            panic!()
        };
        let ps: Vec<i32> = partitions.iter().map(|(k, _)| k.partition).collect();
        assert_eq!(ps, vec![1, 2, 3, 0]);
    }

    #[test]
    fn a_late_answer_for_a_moved_session_is_refused() {
        let mut c = cache(10);
        let id = open(&mut c, 1, 0);
        let Context::Incremental { epoch, .. } = c.context(id, 1, false, &[], &[], 0) else {
            panic!()
        };
        assert_eq!(
            c.answer_incremental(id, epoch + 1, &[]),
            Err(SessionError::InvalidEpoch)
        );
        assert_eq!(
            c.answer_incremental(id + 1, epoch, &[]),
            Err(SessionError::NotFound)
        );
    }

    #[test]
    fn a_full_cache_refuses_new_sessions_while_the_old_are_young() {
        let mut c = cache(2);
        open(&mut c, 5, 0);
        open(&mut c, 5, 0);
        // Young sessions are evictable by nobody but followers.
        assert_eq!(open(&mut c, 50, 1_000), 0);
        assert_eq!(c.len(), 2);
        assert_eq!(c.evictions(), 0);
        let zero = c.create(false, false, &[], 1_000);
        assert_eq!(zero, 0);
    }

    #[test]
    fn a_stale_session_gives_its_slot_to_anyone() {
        let mut c = cache(2);
        let old = open(&mut c, 5, 0);
        let used = open(&mut c, 5, 0);
        // `used` is used later; `old` is not.
        assert!(matches!(
            c.context(used, 1, false, &[], &[], 100_000),
            Context::Incremental { .. }
        ));
        let new = open(&mut c, 1, 120_001);
        assert!(new > 0);
        assert_eq!(c.evictions(), 1);
        assert_eq!(
            c.context(old, 1, false, &[], &[], 120_001),
            Context::Error(SessionError::NotFound)
        );
        assert!(matches!(
            c.context(used, 2, false, &[], &[], 120_001),
            Context::Incremental { .. }
        ));
    }

    #[test]
    fn an_older_smaller_session_yields_to_a_larger_one() {
        let mut c = cache(2);
        let small = open(&mut c, 2, 0);
        let big = open(&mut c, 9, 0);
        // Both used recently (not stale), but created over 2 min ago.
        for (id, now) in [(small, 130_000), (big, 130_000)] {
            assert!(matches!(
                c.context(id, 1, false, &[], &[], now),
                Context::Incremental { .. }
            ));
        }
        // Not larger than the smallest: refused.
        assert_eq!(open(&mut c, 2, 130_001), 0);
        let new = open(&mut c, 3, 130_001);
        assert!(new > 0);
        assert_eq!(
            c.context(small, 2, false, &[], &[], 130_002),
            Context::Error(SessionError::NotFound)
        );
        assert!(matches!(
            c.context(big, 2, false, &[], &[], 130_002),
            Context::Incremental { .. }
        ));
    }

    #[test]
    fn a_follower_session_may_evict_a_young_consumer_session() {
        let mut c = cache(1);
        let consumer = open(&mut c, 100, 0);
        let answered = vec![(key("t", 0), req(0), ans(0, 1))];
        let follower = c.create(true, false, &answered, 10);
        assert!(follower > 0);
        assert_eq!(
            c.context(consumer, 1, false, &[], &[], 10),
            Context::Error(SessionError::NotFound)
        );
        // A consumer cannot take a young follower's slot back.
        assert_eq!(open(&mut c, 500, 20), 0);
    }

    #[test]
    fn no_slots_means_no_sessions() {
        let mut c = cache(0);
        assert_eq!(open(&mut c, 1, 0), 0);
    }
}
