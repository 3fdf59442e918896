//! The partition assignors a consumer group leader runs, as pure functions
//! of the members' subscriptions and the topics' partition counts:
//!
//! - `range` (Kafka's RangeAssignor): per topic, contiguous ranges in
//!   member-id order; an eager protocol (every member gives up everything
//!   before each rebalance).
//! - `cooperative-sticky` (KIP-429): a balanced assignment that keeps each
//!   partition with the member that owns it (the `owned_partitions` of its
//!   subscription) where balance allows. It is incremental: a partition that
//!   has to move is only taken from its owner in one round; its new owner
//!   gets it in a later round, after the owner revoked it and joined again.

use std::collections::{BTreeMap, BTreeSet};

/// Partitions by topic, each list sorted.
pub type TopicPartitions = BTreeMap<String, Vec<i32>>;

/// What the assignors know of a member.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    pub topics: Vec<String>,
    /// The partitions the member holds now (subscription v1+).
    pub owned: TopicPartitions,
    /// The generation in which it got them (v2+; -1 when unknown).
    pub generation: i32,
}

/// An assignor, by its protocol name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Assignor {
    #[value(name = "range")]
    Range,
    #[value(name = "cooperative-sticky")]
    CooperativeSticky,
}

impl Assignor {
    /// The protocol name in JoinGroup.
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::CooperativeSticky => "cooperative-sticky",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [Assignor::Range, Assignor::CooperativeSticky]
            .into_iter()
            .find(|a| a.name() == name)
    }

    /// Whether members keep their partitions through a rebalance and give
    /// up only those they are told to (KIP-429).
    pub fn is_cooperative(self) -> bool {
        self == Assignor::CooperativeSticky
    }

    /// Every member's partitions.
    pub fn assign(
        self,
        subscriptions: &BTreeMap<String, Subscription>,
        partition_counts: &BTreeMap<String, i32>,
    ) -> BTreeMap<String, TopicPartitions> {
        match self {
            Assignor::Range => {
                let topics = subscriptions
                    .iter()
                    .map(|(m, s)| (m.clone(), s.topics.clone()))
                    .collect();
                range_assign(&topics, partition_counts)
            }
            Assignor::CooperativeSticky => {
                cooperative_sticky_assign(subscriptions, partition_counts)
            }
        }
    }
}

/// Kafka's RangeAssignor: per topic, the members subscribed to it in
/// member-id order each get a contiguous range of partitions, the first
/// `partitions % members` one more than the rest.
pub fn range_assign(
    subscriptions: &BTreeMap<String, Vec<String>>,
    partition_counts: &BTreeMap<String, i32>,
) -> BTreeMap<String, TopicPartitions> {
    let mut plan: BTreeMap<String, TopicPartitions> = subscriptions
        .keys()
        .map(|m| (m.clone(), BTreeMap::new()))
        .collect();
    for (topic, &count) in partition_counts {
        let members: Vec<&String> = subscriptions
            .iter()
            .filter(|(_, topics)| topics.contains(topic))
            .map(|(m, _)| m)
            .collect();
        let Ok(n) = i32::try_from(members.len()) else {
            continue;
        };
        if n == 0 {
            continue;
        }
        let (each, extra) = (count / n, count % n);
        for (i, member) in (0..n).zip(members) {
            let start = i * each + i.min(extra);
            let len = each + i32::from(i < extra);
            if len > 0 {
                if let Some(topics) = plan.get_mut(member) {
                    topics.insert(topic.clone(), (start..start + len).collect());
                }
            }
        }
    }
    plan
}

type Partition = (String, i32);

/// Where every partition should end up: balanced (no member could take a
/// partition from one holding two more than it), each partition kept by its
/// current owner unless balance needs it elsewhere.
pub fn sticky_target(
    subscriptions: &BTreeMap<String, Subscription>,
    partition_counts: &BTreeMap<String, i32>,
) -> BTreeMap<String, BTreeSet<Partition>> {
    let subscribes = |member: &str, topic: &str| {
        subscriptions
            .get(member)
            .is_some_and(|s| s.topics.iter().any(|t| t == topic))
    };
    let all: Vec<Partition> = partition_counts
        .iter()
        .filter(|(t, _)| subscriptions.values().any(|s| s.topics.contains(t)))
        .flat_map(|(t, &n)| (0..n).map(move |p| (t.clone(), p)))
        .collect();
    let mut plan: BTreeMap<String, BTreeSet<Partition>> = subscriptions
        .keys()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    let mut owner: BTreeMap<Partition, String> = BTreeMap::new();
    let mut claimants: Vec<(&String, &Subscription)> = subscriptions.iter().collect();
    // A claim from a later generation wins over an older one.
    claimants.sort_by(|a, b| b.1.generation.cmp(&a.1.generation).then(a.0.cmp(b.0)));
    for (member, s) in claimants {
        for (topic, partitions) in &s.owned {
            for &p in partitions {
                let tp = (topic.clone(), p);
                let exists = partition_counts
                    .get(topic)
                    .is_some_and(|&n| (0..n).contains(&p));
                if exists && subscribes(member, topic) && !owner.contains_key(&tp) {
                    owner.insert(tp.clone(), member.clone());
                    plan.entry(member.clone()).or_default().insert(tp);
                }
            }
        }
    }
    // Partitions nobody holds go to the least loaded member that wants them.
    for tp in &all {
        if owner.contains_key(tp) {
            continue;
        }
        let least = plan
            .iter_mut()
            .filter(|(m, _)| subscribes(m, &tp.0))
            .min_by_key(|(_, held)| held.len());
        if let Some((_, held)) = least {
            held.insert(tp.clone());
        }
    }
    // Then move partitions from the most loaded members to the least
    // loaded that can take them until no move would improve the balance.
    // Each move lowers the sum of the squared loads, so this ends.
    loop {
        let mut by_load: Vec<(&String, usize)> = plan.iter().map(|(m, h)| (m, h.len())).collect();
        by_load.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let mut chosen: Option<(String, String, Partition)> = None;
        'search: for &(from, load) in &by_load {
            let Some(held) = plan.get(from) else { continue };
            for tp in held.iter().rev() {
                let to = plan
                    .iter()
                    .filter(|(m, h)| *m != from && h.len() + 1 < load && subscribes(m, &tp.0))
                    .min_by_key(|(_, h)| h.len());
                if let Some((to, _)) = to {
                    chosen = Some((from.clone(), to.clone(), tp.clone()));
                    break 'search;
                }
            }
        }
        let Some((from, to, tp)) = chosen else { break };
        if let Some(h) = plan.get_mut(&from) {
            h.remove(&tp);
        }
        if let Some(h) = plan.get_mut(&to) {
            h.insert(tp);
        }
    }
    plan
}

/// The cooperative-sticky assignment of this round: the sticky target,
/// except that a partition whose owner is another member is withheld (its
/// owner, not assigned it any more, revokes it and joins again; a later
/// round gives it to its new member).
pub fn cooperative_sticky_assign(
    subscriptions: &BTreeMap<String, Subscription>,
    partition_counts: &BTreeMap<String, i32>,
) -> BTreeMap<String, TopicPartitions> {
    let target = sticky_target(subscriptions, partition_counts);
    // Owners as the target saw them: a partition claimed twice stays with
    // the claim the target kept, or, if it moved, with the later claim.
    let mut owners: BTreeMap<Partition, (i32, &String)> = BTreeMap::new();
    for (member, s) in subscriptions {
        for (topic, partitions) in &s.owned {
            for &p in partitions {
                let claim = (s.generation, member);
                let entry = owners.entry((topic.clone(), p)).or_insert(claim);
                if target
                    .get(member)
                    .is_some_and(|h| h.contains(&(topic.clone(), p)))
                {
                    *entry = (i32::MAX, member);
                } else if entry.0 < claim.0 {
                    *entry = claim;
                }
            }
        }
    }
    target
        .iter()
        .map(|(member, held)| {
            let mut out: TopicPartitions = BTreeMap::new();
            for tp in held {
                let owned_by_other = owners.get(tp).is_some_and(|(_, owner)| {
                    *owner != member && subscriptions.contains_key(*owner)
                });
                if !owned_by_other {
                    out.entry(tp.0.clone()).or_default().push(tp.1);
                }
            }
            (member.clone(), out)
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn sub(topics: &[&str], owned: &[(&str, &[i32])], generation: i32) -> Subscription {
        Subscription {
            topics: topics.iter().map(|t| t.to_string()).collect(),
            owned: owned
                .iter()
                .map(|(t, ps)| (t.to_string(), ps.to_vec()))
                .collect(),
            generation,
        }
    }

    fn counts(c: &[(&str, i32)]) -> BTreeMap<String, i32> {
        c.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    fn members(m: &[(&str, Subscription)]) -> BTreeMap<String, Subscription> {
        m.iter()
            .map(|(id, s)| (id.to_string(), s.clone()))
            .collect()
    }

    fn of(plan: &BTreeMap<String, TopicPartitions>, member: &str, topic: &str) -> Vec<i32> {
        plan[member].get(topic).cloned().unwrap_or_default()
    }

    /// Runs rounds of the cooperative protocol: every member reports what
    /// it was given last round; until the assignment stops changing.
    /// Returns every round's plan.
    fn rounds(
        mut subs: BTreeMap<String, Subscription>,
        c: &BTreeMap<String, i32>,
    ) -> Vec<BTreeMap<String, TopicPartitions>> {
        let mut out = Vec::new();
        for generation in 1..10 {
            let plan = cooperative_sticky_assign(&subs, c);
            let done = subs.iter().all(|(m, s)| s.owned == plan[m]);
            out.push(plan.clone());
            if done {
                return out;
            }
            for (m, s) in subs.iter_mut() {
                s.owned = plan[m].clone();
                s.generation = generation;
            }
        }
        panic!("no stable assignment after 9 rounds: {out:?}");
    }

    #[test]
    fn the_range_assignor_gives_the_first_members_the_extra_partitions() {
        let subs: BTreeMap<String, Vec<String>> = [
            ("b".to_string(), vec!["t".to_string(), "u".to_string()]),
            ("a".to_string(), vec!["t".to_string()]),
            ("c".to_string(), vec!["t".to_string()]),
        ]
        .into_iter()
        .collect();
        let plan = range_assign(&subs, &counts(&[("t", 7), ("u", 2)]));
        assert_eq!(plan["a"]["t"], vec![0, 1, 2]);
        assert_eq!(plan["b"]["t"], vec![3, 4]);
        assert_eq!(plan["c"]["t"], vec![5, 6]);
        assert_eq!(plan["b"]["u"], vec![0, 1]);
        assert!(!plan["a"].contains_key("u"));
    }

    #[test]
    fn a_new_group_is_split_evenly() {
        let subs = members(&[("a", sub(&["t"], &[], -1)), ("b", sub(&["t"], &[], -1))]);
        let plan = cooperative_sticky_assign(&subs, &counts(&[("t", 6)]));
        assert_eq!(of(&plan, "a", "t").len(), 3);
        assert_eq!(of(&plan, "b", "t").len(), 3);
        let mut all = [of(&plan, "a", "t"), of(&plan, "b", "t")].concat();
        all.sort_unstable();
        assert_eq!(all, [0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_third_member_gets_two_partitions_without_moving_the_others() {
        let subs = members(&[
            ("a", sub(&["t"], &[("t", &[0, 1, 2])], 3)),
            ("b", sub(&["t"], &[("t", &[3, 4, 5])], 3)),
            ("c", sub(&["t"], &[], -1)),
        ]);
        let c = counts(&[("t", 6)]);
        let target = sticky_target(&subs, &c);
        assert!(target.values().all(|h| h.len() == 2), "{target:?}");
        // Stickiness: a and b each keep two of their three.
        assert_eq!(target["a"].iter().filter(|(_, p)| *p < 3).count(), 2);
        assert_eq!(target["b"].iter().filter(|(_, p)| *p >= 3).count(), 2);

        let all = rounds(subs, &c);
        // First round: a and b are each told to give one up; c gets nothing yet.
        let first = &all[0];
        assert_eq!(of(first, "a", "t").len(), 2);
        assert_eq!(of(first, "b", "t").len(), 2);
        assert!(of(first, "c", "t").is_empty(), "{first:?}");
        // Second round: c gets the two revoked partitions.
        let second = &all[1];
        assert_eq!(of(second, "a", "t"), of(first, "a", "t"));
        assert_eq!(of(second, "b", "t"), of(first, "b", "t"));
        assert_eq!(of(second, "c", "t").len(), 2);
        assert_eq!(all.len(), 3, "stable after two rounds: {all:?}");
    }

    #[test]
    fn a_partition_is_never_given_while_another_member_still_owns_it() {
        // Over every round, a member is only assigned a partition that
        // nobody else held at the start of that round.
        let subs = members(&[
            (
                "a",
                sub(
                    &["t", "u"],
                    &[("t", &[0, 1, 2, 3, 4, 5]), ("u", &[0, 1])],
                    1,
                ),
            ),
            ("b", sub(&["t"], &[], -1)),
            ("c", sub(&["t", "u"], &[], -1)),
            ("d", sub(&["u"], &[], -1)),
        ]);
        let c = counts(&[("t", 6), ("u", 3)]);
        let mut owned: BTreeMap<String, TopicPartitions> = subs
            .iter()
            .map(|(m, s)| (m.clone(), s.owned.clone()))
            .collect();
        for plan in rounds(subs, &c) {
            for (member, topics) in &plan {
                for (topic, partitions) in topics {
                    for p in partitions {
                        let held_by_other = owned.iter().any(|(m, o)| {
                            m != member && o.get(topic).is_some_and(|ps| ps.contains(p))
                        });
                        assert!(!held_by_other, "{member} got {topic}-{p} too early");
                    }
                }
            }
            owned = plan;
        }
        // In the end every partition is held once, and loads differ by at
        // most one among the members of each topic.
        let mut t: Vec<i32> = owned
            .values()
            .flat_map(|o| o.get("t").cloned().unwrap_or_default())
            .collect();
        t.sort_unstable();
        assert_eq!(t, [0, 1, 2, 3, 4, 5]);
        let mut u: Vec<i32> = owned
            .values()
            .flat_map(|o| o.get("u").cloned().unwrap_or_default())
            .collect();
        u.sort_unstable();
        assert_eq!(u, [0, 1, 2]);
        assert!(!owned["b"].contains_key("u"));
        assert!(!owned["d"].contains_key("t"));
        let loads: Vec<usize> = owned
            .values()
            .map(|o| o.values().map(Vec::len).sum())
            .collect();
        let (min, max) = (loads.iter().min().unwrap(), loads.iter().max().unwrap());
        assert!(max - min <= 1, "{owned:?}");
    }

    #[test]
    fn owned_partitions_are_kept_when_the_group_is_balanced() {
        let subs = members(&[
            ("a", sub(&["t"], &[("t", &[1, 4])], 5)),
            ("b", sub(&["t"], &[("t", &[0, 5])], 5)),
            ("c", sub(&["t"], &[("t", &[2, 3])], 5)),
        ]);
        let plan = cooperative_sticky_assign(&subs, &counts(&[("t", 6)]));
        assert_eq!(of(&plan, "a", "t"), [1, 4]);
        assert_eq!(of(&plan, "b", "t"), [0, 5]);
        assert_eq!(of(&plan, "c", "t"), [2, 3]);
    }

    #[test]
    fn a_departed_member_s_partitions_go_to_the_others_at_once() {
        // c left: its partitions have no owner among the members.
        let subs = members(&[
            ("a", sub(&["t"], &[("t", &[0, 1])], 4)),
            ("b", sub(&["t"], &[("t", &[2, 3])], 4)),
        ]);
        let plan = cooperative_sticky_assign(&subs, &counts(&[("t", 6)]));
        assert_eq!(of(&plan, "a", "t").len(), 3);
        assert_eq!(of(&plan, "b", "t").len(), 3);
        assert!(of(&plan, "a", "t").starts_with(&[0, 1]));
        assert!(of(&plan, "b", "t").starts_with(&[2, 3]));
    }

    #[test]
    fn a_stale_claim_loses_to_a_later_generation_and_gone_partitions_are_dropped() {
        let subs = members(&[
            ("a", sub(&["t"], &[("t", &[0, 1, 7])], 2)),
            ("b", sub(&["t"], &[("t", &[1, 2])], 3)),
        ]);
        let target = sticky_target(&subs, &counts(&[("t", 4)]));
        assert!(target["b"].contains(&("t".to_string(), 1)));
        assert!(!target["a"].contains(&("t".to_string(), 1)));
        assert!(!target["a"].contains(&("t".to_string(), 7)));
        assert_eq!(target["a"].len() + target["b"].len(), 4);
        let plan = cooperative_sticky_assign(&subs, &counts(&[("t", 4)]));
        assert!(of(&plan, "b", "t").contains(&1));
    }

    #[test]
    fn protocol_names_round_trip() {
        for a in [Assignor::Range, Assignor::CooperativeSticky] {
            assert_eq!(Assignor::from_name(a.name()), Some(a));
        }
        assert!(Assignor::from_name("roundrobin").is_none());
    }
}
