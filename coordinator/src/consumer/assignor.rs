//! The server-side assignors of KIP-848: `uniform` (balanced and sticky)
//! and `range` (each topic's partitions split in ranges over the members
//! subscribed to it, so co-partitioned topics line up).
//!
//! Both are pure functions of the members' subscriptions, the topics'
//! partition counts and (for `uniform`) the previous target assignment.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::Assignment;

/// The assignor used when neither the member nor the broker's
/// `group.consumer.assignors` says otherwise.
pub const UNIFORM: &str = "uniform";
pub const RANGE: &str = "range";

/// One member as an assignor sees it.
#[derive(Debug, Clone)]
pub(crate) struct AssignMember<'a> {
    pub id: &'a str,
    /// Ids of the existing topics it subscribes to.
    pub topics: BTreeSet<Uuid>,
    /// Its previous target assignment (stickiness).
    pub previous: &'a Assignment,
}

/// Runs the assignor `name` (one of [`UNIFORM`], [`RANGE`]).
pub(crate) fn assign(
    name: &str,
    members: &[AssignMember<'_>],
    partitions: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    if name == RANGE {
        range(members, partitions)
    } else {
        uniform(members, partitions)
    }
}

type Tp = (Uuid, i32);

fn to_assignment(parts: &BTreeSet<Tp>) -> Assignment {
    let mut out = Assignment::new();
    for (topic, p) in parts {
        out.entry(*topic).or_default().insert(*p);
    }
    out
}

/// Balanced (member counts differ by at most one among members that could
/// take each other's partitions) and sticky: a partition stays with its
/// previous owner unless balance requires moving it.
pub(crate) fn uniform(
    members: &[AssignMember<'_>],
    partitions: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    let mut owned: BTreeMap<&str, BTreeSet<Tp>> =
        members.iter().map(|m| (m.id, BTreeSet::new())).collect();
    let subscribed: BTreeMap<&str, &BTreeSet<Uuid>> =
        members.iter().map(|m| (m.id, &m.topics)).collect();
    let mut unassigned: BTreeSet<Tp> = BTreeSet::new();
    for (topic, count) in partitions {
        if members.iter().any(|m| m.topics.contains(topic)) {
            unassigned.extend((0..*count).map(|p| (*topic, p)));
        }
    }
    let total = unassigned.len();
    // Balanced share when everyone subscribes to everything; heterogeneous
    // groups are evened out by the moves below.
    let quota = total.div_ceil(members.len().max(1));
    // Keep what each member had, up to its share.
    for m in members {
        let mine = owned.entry(m.id).or_default();
        for (topic, parts) in m.previous {
            if !m.topics.contains(topic) {
                continue;
            }
            for p in parts {
                if mine.len() < quota && unassigned.remove(&(*topic, *p)) {
                    mine.insert((*topic, *p));
                }
            }
        }
    }
    // Hand out the rest to the least loaded eligible member.
    for tp in std::mem::take(&mut unassigned) {
        let target = owned
            .iter()
            .filter(|(id, _)| subscribed.get(*id).is_some_and(|t| t.contains(&tp.0)))
            .min_by_key(|(id, parts)| (parts.len(), **id))
            .map(|(id, _)| *id);
        if let Some(id) = target {
            owned.entry(id).or_default().insert(tp);
        }
    }
    // Even out: move a partition from a member with at least two more than
    // another member that can take it. Each move lowers the spread, so the
    // loop ends; the bound is a guard.
    for _ in 0..total.saturating_mul(members.len()).saturating_add(1) {
        let Some(mv) = find_move(&owned, &subscribed) else {
            break;
        };
        let (from, to, tp) = mv;
        owned.entry(from).or_default().remove(&tp);
        owned.entry(to).or_default().insert(tp);
    }
    owned
        .into_iter()
        .map(|(id, parts)| (id.to_string(), to_assignment(&parts)))
        .collect()
}

fn find_move<'a>(
    owned: &BTreeMap<&'a str, BTreeSet<Tp>>,
    subscribed: &BTreeMap<&'a str, &BTreeSet<Uuid>>,
) -> Option<(&'a str, &'a str, Tp)> {
    let mut heavy: Vec<(&str, &BTreeSet<Tp>)> = owned.iter().map(|(k, v)| (*k, v)).collect();
    heavy.sort_by_key(|(id, parts)| (std::cmp::Reverse(parts.len()), *id));
    for (from, parts) in heavy {
        for tp in parts.iter().rev() {
            let to = owned
                .iter()
                .filter(|(id, theirs)| {
                    **id != from
                        && theirs.len().saturating_add(2) <= parts.len()
                        && subscribed.get(*id).is_some_and(|t| t.contains(&tp.0))
                })
                .min_by_key(|(id, theirs)| (theirs.len(), **id))
                .map(|(id, _)| *id);
            if let Some(to) = to {
                return Some((from, to, *tp));
            }
        }
    }
    None
}

/// Per topic, the members subscribed to it (by member id) take consecutive
/// ranges; the first `partitions % members` take one more.
pub(crate) fn range(
    members: &[AssignMember<'_>],
    partitions: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members
        .iter()
        .map(|m| (m.id.to_string(), Assignment::new()))
        .collect();
    for (topic, count) in partitions {
        let mut takers: Vec<&str> = members
            .iter()
            .filter(|m| m.topics.contains(topic))
            .map(|m| m.id)
            .collect();
        if takers.is_empty() {
            continue;
        }
        takers.sort_unstable();
        let n = usize::try_from(*count).unwrap_or(0);
        let per = n / takers.len();
        let extra = n % takers.len();
        let mut next = 0usize;
        for (i, id) in takers.iter().enumerate() {
            let len = per + usize::from(i < extra);
            let parts: BTreeSet<i32> = (next..next + len)
                .filter_map(|p| i32::try_from(p).ok())
                .collect();
            next += len;
            if !parts.is_empty() {
                out.entry((*id).to_string())
                    .or_default()
                    .insert(*topic, parts);
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn count(a: &Assignment) -> usize {
        a.values().map(BTreeSet::len).sum()
    }

    /// Members all subscribed to `t`, with their previous targets from
    /// `previous` (none when absent).
    fn everyone<'a>(
        ids: &[&'a str],
        t: &[Uuid],
        previous: &'a BTreeMap<String, Assignment>,
        empty: &'a Assignment,
    ) -> Vec<AssignMember<'a>> {
        ids.iter()
            .map(|id| AssignMember {
                id,
                topics: t.iter().copied().collect(),
                previous: previous.get(*id).unwrap_or(empty),
            })
            .collect()
    }

    fn topics(n: u128) -> Vec<Uuid> {
        (1..=n).map(Uuid::from_u128).collect()
    }

    fn all_once(result: &BTreeMap<String, Assignment>, parts: &BTreeMap<Uuid, i32>) {
        let mut seen = BTreeSet::new();
        for a in result.values() {
            for (t, ps) in a {
                for p in ps {
                    assert!(seen.insert((*t, *p)), "{t}-{p} assigned twice");
                }
            }
        }
        let expected: usize = parts.values().map(|c| *c as usize).sum();
        assert_eq!(seen.len(), expected);
    }

    #[test]
    fn uniform_balances_six_partitions_over_three_members() {
        let t = topics(1);
        let parts = BTreeMap::from([(t[0], 6)]);
        let empty = Assignment::new();
        let none = BTreeMap::new();
        let members = everyone(&["a", "b", "c"], &t, &none, &empty);
        let result = uniform(&members, &parts);
        all_once(&result, &parts);
        assert!(result.values().all(|a| count(a) == 2), "{result:?}");
    }

    #[test]
    fn uniform_is_sticky_when_a_member_joins() {
        let t = topics(2);
        let parts = BTreeMap::from([(t[0], 4), (t[1], 4)]);
        let empty = Assignment::new();
        let none = BTreeMap::new();
        let two = everyone(&["a", "b"], &t, &none, &empty);
        let first = uniform(&two, &parts);
        let three = everyone(&["a", "b", "c"], &t, &first, &empty);
        let second = uniform(&three, &parts);
        all_once(&second, &parts);
        let counts: Vec<usize> = second.values().map(count).collect();
        assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1);
        // a and b each keep 3 of their 4: only what c needs moves.
        for id in ["a", "b"] {
            let before: BTreeSet<_> = first[id]
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
                .collect();
            let kept = second[id]
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
                .filter(|tp| before.contains(tp))
                .count();
            assert_eq!(
                kept,
                count(&second[id]),
                "{id} got a partition it did not own"
            );
        }
    }

    #[test]
    fn uniform_respects_heterogeneous_subscriptions() {
        let t = topics(2);
        let parts = BTreeMap::from([(t[0], 4), (t[1], 2)]);
        let empty = Assignment::new();
        let a = AssignMember {
            id: "a",
            topics: [t[0]].into(),
            previous: &empty,
        };
        let b = AssignMember {
            id: "b",
            topics: [t[0], t[1]].into(),
            previous: &empty,
        };
        let result = uniform(&[a, b], &parts);
        all_once(&result, &parts);
        assert!(!result["a"].contains_key(&t[1]));
        assert_eq!(count(&result["a"]), 3);
        assert_eq!(count(&result["b"]), 3);
    }

    #[test]
    fn range_splits_each_topic_in_ranges_first_members_take_the_extra() {
        let t = topics(2);
        let parts = BTreeMap::from([(t[0], 5), (t[1], 5)]);
        let empty = Assignment::new();
        let none = BTreeMap::new();
        let members = everyone(&["m2", "m1"], &t, &none, &empty);
        let result = range(&members, &parts);
        all_once(&result, &parts);
        for topic in &t {
            assert_eq!(result["m1"][topic], BTreeSet::from([0, 1, 2]));
            assert_eq!(result["m2"][topic], BTreeSet::from([3, 4]));
        }
    }

    #[test]
    fn no_members_or_no_topics_assign_nothing() {
        let t = topics(1);
        let parts = BTreeMap::from([(t[0], 3)]);
        assert!(uniform(&[], &parts).is_empty());
        let empty = Assignment::new();
        let lonely = AssignMember {
            id: "a",
            topics: BTreeSet::new(),
            previous: &empty,
        };
        assert_eq!(
            count(&uniform(std::slice::from_ref(&lonely), &parts)["a"]),
            0
        );
        assert_eq!(count(&range(&[lonely], &parts)["a"]), 0);
    }
}
