//! One member's step toward its target assignment (KIP-848's incremental
//! reconciliation).
//!
//! - A member that holds partitions no longer in its target must revoke
//!   them first: it keeps its epoch and is told its assignment without
//!   them (`UnrevokedPartitions`), and moves on once a heartbeat reports
//!   them gone.
//! - Otherwise it takes the target epoch and every target partition that
//!   no other member holds; partitions still held elsewhere are given on a
//!   later heartbeat, once released (`UnreleasedPartitions`).

use std::collections::BTreeSet;

use uuid::Uuid;

use super::{Assignment, ConsumerMember, MemberState};

/// Whether `owned` (what the member reported owning; `None` when it did not
/// say) still includes any of `revoking`.
fn still_owns(owned: Option<&Assignment>, revoking: &Assignment) -> bool {
    let Some(owned) = owned else {
        return revoking.values().any(|ps| !ps.is_empty());
    };
    revoking.iter().any(|(t, ps)| {
        owned
            .get(t)
            .is_some_and(|mine| ps.iter().any(|p| mine.contains(p)))
    })
}

/// Moves `member` one step toward `target` (for `target_epoch`);
/// `held` are the partitions other members hold. `now` starts the revoke
/// deadline.
pub(crate) fn step(
    member: &mut ConsumerMember,
    target_epoch: i32,
    target: &Assignment,
    owned: Option<&Assignment>,
    held: &BTreeSet<(Uuid, i32)>,
    now: i64,
) {
    let waiting = match member.state {
        MemberState::Stable => member.epoch == target_epoch,
        MemberState::UnrevokedPartitions => still_owns(owned, &member.pending_revocation),
        MemberState::UnreleasedPartitions => false,
    };
    if waiting {
        return;
    }
    let mut kept = Assignment::new();
    let mut revoking = Assignment::new();
    for (t, ps) in &member.assigned {
        for p in ps {
            let in_target = target.get(t).is_some_and(|tp| tp.contains(p));
            let bucket = if in_target { &mut kept } else { &mut revoking };
            bucket.entry(*t).or_default().insert(*p);
        }
    }
    let mut with_free = kept.clone();
    let mut unreleased = false;
    for (t, ps) in target {
        for p in ps {
            if kept.get(t).is_some_and(|k| k.contains(p)) {
                continue;
            }
            if held.contains(&(*t, *p)) {
                unreleased = true;
            } else {
                with_free.entry(*t).or_default().insert(*p);
            }
        }
    }
    if !revoking.is_empty() && still_owns(owned, &revoking) {
        member.state = MemberState::UnrevokedPartitions;
        member.assigned = kept;
        member.pending_revocation = revoking;
        member.revoke_deadline =
            Some(now.saturating_add(i64::from(member.rebalance_timeout_ms.max(0))));
        return;
    }
    if member.epoch != target_epoch {
        member.previous_epoch = member.epoch;
        member.epoch = target_epoch;
    }
    member.assigned = with_free;
    member.pending_revocation = Assignment::new();
    member.revoke_deadline = None;
    member.state = if unreleased {
        MemberState::UnreleasedPartitions
    } else {
        MemberState::Stable
    };
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn a(t: Uuid, ps: &[i32]) -> Assignment {
        BTreeMap::from([(t, ps.iter().copied().collect())])
    }

    fn member(assigned: Assignment, epoch: i32) -> ConsumerMember {
        let mut m = ConsumerMember::new("m".into(), 0);
        m.assigned = assigned;
        m.epoch = epoch;
        m
    }

    #[test]
    fn revokes_before_taking_the_new_epoch() {
        let t = Uuid::from_u128(1);
        let mut m = member(a(t, &[0, 1, 2]), 1);
        step(&mut m, 2, &a(t, &[0]), None, &BTreeSet::new(), 10);
        assert_eq!(m.state, MemberState::UnrevokedPartitions);
        assert_eq!(m.epoch, 1);
        assert_eq!(m.assigned, a(t, &[0]));
        assert_eq!(m.pending_revocation, a(t, &[1, 2]));
        // Still reporting 1 and 2: no progress.
        step(
            &mut m,
            2,
            &a(t, &[0]),
            Some(&a(t, &[0, 1, 2])),
            &BTreeSet::new(),
            20,
        );
        assert_eq!(m.epoch, 1);
        // Released: at the new epoch, stable.
        step(
            &mut m,
            2,
            &a(t, &[0]),
            Some(&a(t, &[0])),
            &BTreeSet::new(),
            30,
        );
        assert_eq!((m.state, m.epoch), (MemberState::Stable, 2));
        assert!(m.pending_revocation.is_empty());
    }

    #[test]
    fn waits_for_partitions_another_member_still_holds() {
        let t = Uuid::from_u128(1);
        let mut m = member(Assignment::new(), 0);
        let held = BTreeSet::from([(t, 1)]);
        step(
            &mut m,
            3,
            &a(t, &[0, 1]),
            Some(&Assignment::new()),
            &held,
            0,
        );
        assert_eq!(m.state, MemberState::UnreleasedPartitions);
        assert_eq!((m.epoch, m.assigned.clone()), (3, a(t, &[0])));
        step(&mut m, 3, &a(t, &[0, 1]), None, &BTreeSet::new(), 0);
        assert_eq!(m.state, MemberState::Stable);
        assert_eq!(m.assigned, a(t, &[0, 1]));
    }

    #[test]
    fn a_member_that_already_dropped_the_partitions_moves_on_at_once() {
        let t = Uuid::from_u128(1);
        let mut m = member(a(t, &[0, 1]), 4);
        step(
            &mut m,
            5,
            &a(t, &[1]),
            Some(&a(t, &[1])),
            &BTreeSet::new(),
            0,
        );
        assert_eq!((m.state, m.epoch), (MemberState::Stable, 5));
        assert_eq!(m.previous_epoch, 4);
    }
}
