//! Replica placement for new partitions, with the behaviour of Kafka's
//! `StripedReplicaPlacer`:
//!
//! - Racks (brokers without `broker.rack` form one rack, sorted first) are
//!   taken round-robin from a random starting rack, and each partition starts
//!   one rack further on, giving the "striped" pattern: with racks A, B, C,
//!   partitions go A B C, B C A, C A B.
//! - Within a rack, brokers are taken round-robin (sorted by id, from a
//!   random offset that advances every partition), unfenced brokers before
//!   fenced ones. The first replica, the leader, is always unfenced.
//! - After as many partitions as there are unfenced brokers, the rack order
//!   and each rack's broker order are shuffled, so large topics do not
//!   repeat the same replica sets.
//! - Brokers in controlled shutdown are not offered at all; fenced brokers
//!   count towards the replication factor (they can hold a follower).
//!
//! Randomness is injected ([`RandomSource`]) so placement is reproducible in
//! tests.

use std::collections::BTreeMap;

/// Where placement (and topic ids) draw their random numbers.
pub trait RandomSource {
    /// 64 random bits.
    fn next_u64(&mut self) -> u64;

    /// A number in `0..bound` (0 when `bound` is 0).
    fn next_below(&mut self, bound: usize) -> usize {
        let bound = u64::try_from(bound.max(1)).unwrap_or(u64::MAX);
        usize::try_from(self.next_u64() % bound).unwrap_or(0)
    }
}

/// A small seeded generator (SplitMix64), enough for spreading replicas.
#[derive(Debug, Clone)]
pub struct SeededRandom(u64);

impl SeededRandom {
    pub fn new(seed: u64) -> Self {
        SeededRandom(seed)
    }
}

impl RandomSource for SeededRandom {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// A broker placement may use: registered and not in controlled shutdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsableBroker {
    pub id: i32,
    pub rack: Option<String>,
    pub fenced: bool,
}

/// Why replicas could not be placed; the controller answers
/// INVALID_REPLICATION_FACTOR with the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PlacementError(pub String);

fn shuffle(items: &mut [i32], random: &mut dyn RandomSource) {
    for i in (1..items.len()).rev() {
        let j = random.next_below(i + 1);
        items.swap(i, j);
    }
}

/// Brokers taken round-robin, once each per iteration epoch.
#[derive(Debug, Default)]
struct BrokerList {
    brokers: Vec<i32>,
    index: usize,
    offset: usize,
    epoch: usize,
}

impl BrokerList {
    fn initialize(&mut self, random: &mut dyn RandomSource) {
        if !self.brokers.is_empty() {
            self.brokers.sort_unstable();
            self.offset = random.next_below(self.brokers.len());
        }
    }

    /// The next broker of this epoch, or `None` when every broker was given.
    fn next(&mut self, epoch: usize) -> Option<i32> {
        let len = self.brokers.len();
        if len == 0 {
            return None;
        }
        if self.epoch != epoch {
            self.epoch = epoch;
            self.index = 0;
            self.offset = (self.offset + 1) % len;
        }
        if self.index >= len {
            return None;
        }
        let broker = self.brokers.get((self.index + self.offset) % len).copied();
        self.index += 1;
        broker
    }
}

#[derive(Debug, Default)]
struct Rack {
    unfenced: BrokerList,
    fenced: BrokerList,
}

impl Rack {
    fn next(&mut self, epoch: usize) -> Option<i32> {
        self.unfenced
            .next(epoch)
            .or_else(|| self.fenced.next(epoch))
    }
}

/// The placer's state across the partitions of one request.
struct RackList<'r> {
    random: &'r mut dyn RandomSource,
    racks: BTreeMap<Option<String>, Rack>,
    names: Vec<Option<String>>,
    total: usize,
    unfenced: usize,
    epoch: usize,
    offset: usize,
}

impl<'r> RackList<'r> {
    fn new(random: &'r mut dyn RandomSource, brokers: &[UsableBroker]) -> Self {
        let mut racks: BTreeMap<Option<String>, Rack> = BTreeMap::new();
        let mut unfenced = 0;
        for b in brokers {
            let rack = racks.entry(b.rack.clone()).or_default();
            if b.fenced {
                rack.fenced.brokers.push(b.id);
            } else {
                unfenced += 1;
                rack.unfenced.brokers.push(b.id);
            }
        }
        for rack in racks.values_mut() {
            rack.fenced.initialize(random);
            rack.unfenced.initialize(random);
        }
        // BTreeMap keys are sorted with no rack first, as Kafka sorts them.
        let names: Vec<Option<String>> = racks.keys().cloned().collect();
        let offset = if names.is_empty() {
            0
        } else {
            random.next_below(names.len())
        };
        RackList {
            random,
            racks,
            names,
            total: brokers.len(),
            unfenced,
            epoch: 0,
            offset,
        }
    }

    fn shuffle(&mut self) {
        for i in (1..self.names.len()).rev() {
            let j = self.random.next_below(i + 1);
            self.names.swap(i, j);
        }
        for rack in self.racks.values_mut() {
            shuffle(&mut rack.fenced.brokers, self.random);
            shuffle(&mut rack.unfenced.brokers, self.random);
        }
    }

    fn rack_at(&mut self, index: usize) -> Option<&mut Rack> {
        let name = self.names.get(index)?;
        self.racks.get_mut(name)
    }

    fn place(&mut self, replication_factor: usize) -> Result<Vec<i32>, PlacementError> {
        if self.epoch == self.unfenced && self.unfenced > 1 {
            self.shuffle();
            self.epoch = 0;
        }
        let racks = self.names.len();
        if self.offset >= racks {
            self.offset = 0;
        }
        let epoch = self.epoch;
        // Every loop below visits each rack at most a bounded number of
        // times; the guard turns an impossible state into an error rather
        // than a hang.
        let mut budget = (racks + 1) * (replication_factor + self.total + 1);
        let mut replicas = Vec::with_capacity(replication_factor);
        let mut leader_rack = self.offset;
        let leader_rack = loop {
            budget = budget.saturating_sub(1);
            if budget == 0 {
                return Err(PlacementError("no unfenced broker could lead".into()));
            }
            if let Some(b) = self
                .rack_at(leader_rack)
                .and_then(|r| r.unfenced.next(epoch))
            {
                replicas.push(b);
                break leader_rack;
            }
            leader_rack = (leader_rack + 1) % racks;
        };
        // The leader's rack is skipped once, on the first pass.
        let mut first_rack = Some(leader_rack);
        let mut rack_index = self.offset;
        while replicas.len() < replication_factor {
            budget = budget.saturating_sub(1);
            if budget == 0 {
                return Err(PlacementError("ran out of brokers to place on".into()));
            }
            let picked = if first_rack == Some(rack_index) {
                first_rack = None;
                None
            } else {
                self.rack_at(rack_index).and_then(|r| r.next(epoch))
            };
            rack_index = (rack_index + 1) % racks;
            if let Some(b) = picked {
                replicas.push(b);
            }
        }
        self.epoch += 1;
        self.offset += 1;
        Ok(replicas)
    }
}

/// Places `partitions` new partitions of `replication_factor` replicas on
/// `brokers`. Fails, as Kafka does, when the factor is not positive, when
/// every broker is fenced, or when fewer brokers are usable than the factor.
pub fn place(
    random: &mut dyn RandomSource,
    brokers: &[UsableBroker],
    partitions: usize,
    replication_factor: i32,
) -> Result<Vec<Vec<i32>>, PlacementError> {
    let mut list = RackList::new(random, brokers);
    let factor = usize::try_from(replication_factor)
        .ok()
        .filter(|f| *f > 0)
        .ok_or_else(|| {
            PlacementError(format!(
                "Invalid replication factor {replication_factor}: the replication factor must be positive."
            ))
        })?;
    if list.unfenced == 0 {
        return Err(PlacementError("All brokers are currently fenced.".into()));
    }
    if factor > list.total {
        return Err(PlacementError(format!(
            "The target replication factor of {factor} cannot be reached because only {} broker(s) are registered.",
            list.total
        )));
    }
    (0..partitions).map(|_| list.place(factor)).collect()
}

#[cfg(test)]
#[path = "placement_tests.rs"]
mod tests;
