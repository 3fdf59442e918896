#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

fn broker(id: i32, rack: Option<&str>, fenced: bool) -> UsableBroker {
    UsableBroker {
        id,
        rack: rack.map(str::to_owned),
        fenced,
    }
}

fn leader_counts(placement: &[Vec<i32>]) -> BTreeMap<i32, usize> {
    let mut counts = BTreeMap::new();
    for replicas in placement {
        *counts.entry(replicas[0]).or_default() += 1;
    }
    counts
}

#[test]
fn six_partitions_rf3_on_three_brokers_spread_leaders_evenly() {
    let brokers: Vec<_> = (1..=3).map(|id| broker(id, None, false)).collect();
    for seed in 0..20 {
        let placement = place(&mut SeededRandom::new(seed), &brokers, 6, 3).unwrap();
        assert_eq!(placement.len(), 6);
        for replicas in &placement {
            let distinct: BTreeSet<_> = replicas.iter().collect();
            assert_eq!(distinct.len(), 3, "seed {seed}: {replicas:?}");
        }
        let counts = leader_counts(&placement);
        assert_eq!(
            counts.values().copied().collect::<Vec<_>>(),
            vec![2, 2, 2],
            "seed {seed}"
        );
    }
}

#[test]
fn the_random_source_chooses_where_the_leaders_start() {
    let brokers: Vec<_> = (1..=3).map(|id| broker(id, None, false)).collect();
    let first_leaders: BTreeSet<i32> = (0..30)
        .map(|seed| place(&mut SeededRandom::new(seed), &brokers, 1, 1).unwrap()[0][0])
        .collect();
    assert_eq!(first_leaders.len(), 3);
}

#[test]
fn the_same_seed_places_the_same_way() {
    let brokers: Vec<_> = (1..=5).map(|id| broker(id, None, false)).collect();
    let a = place(&mut SeededRandom::new(7), &brokers, 12, 3).unwrap();
    let b = place(&mut SeededRandom::new(7), &brokers, 12, 3).unwrap();
    assert_eq!(a, b);
}

#[test]
fn replicas_of_a_partition_land_on_distinct_racks_when_racks_allow() {
    let brokers = vec![
        broker(1, Some("a"), false),
        broker(2, Some("a"), false),
        broker(3, Some("b"), false),
        broker(4, Some("b"), false),
        broker(5, Some("c"), false),
        broker(6, Some("c"), false),
    ];
    let rack_of: BTreeMap<i32, &str> =
        [(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c"), (6, "c")].into();
    for seed in 0..20 {
        let placement = place(&mut SeededRandom::new(seed), &brokers, 9, 3).unwrap();
        for replicas in &placement {
            let racks: BTreeSet<_> = replicas.iter().map(|b| rack_of[b]).collect();
            assert_eq!(racks.len(), 3, "seed {seed}: {replicas:?}");
        }
        let counts = leader_counts(&placement);
        assert!(counts.values().all(|c| *c <= 3), "seed {seed}: {counts:?}");
    }
}

#[test]
fn a_fenced_broker_never_leads_and_is_used_only_when_needed() {
    let brokers = vec![
        broker(1, None, false),
        broker(2, None, false),
        broker(3, None, true),
    ];
    for seed in 0..20 {
        let rf2 = place(&mut SeededRandom::new(seed), &brokers, 4, 2).unwrap();
        assert!(
            rf2.iter().flatten().all(|b| *b != 3),
            "seed {seed}: {rf2:?}"
        );
        let rf3 = place(&mut SeededRandom::new(seed), &brokers, 4, 3).unwrap();
        assert!(rf3.iter().all(|r| r[0] != 3 && r.contains(&3)));
    }
}

#[test]
fn more_replicas_than_usable_brokers_is_refused() {
    let brokers: Vec<_> = (1..=3).map(|id| broker(id, None, false)).collect();
    let err = place(&mut SeededRandom::new(1), &brokers, 1, 4).unwrap_err();
    assert!(err.0.contains("only 3 broker(s)"), "{err}");
}

#[test]
fn all_fenced_brokers_or_a_non_positive_factor_is_refused() {
    let fenced = vec![broker(1, None, true)];
    assert!(place(&mut SeededRandom::new(1), &fenced, 1, 1).is_err());
    let live = vec![broker(1, None, false)];
    assert!(place(&mut SeededRandom::new(1), &live, 1, 0).is_err());
    assert!(place(&mut SeededRandom::new(1), &[], 1, 1).is_err());
}

proptest! {
    #[test]
    fn placement_gives_distinct_replicas_led_by_unfenced_brokers(
        seed in any::<u64>(),
        fenced in proptest::collection::vec(any::<bool>(), 1..8),
        racks in proptest::collection::vec(0u8..3, 8),
        partitions in 1usize..20,
        factor in 1i32..5,
    ) {
        let brokers: Vec<_> = fenced
            .iter()
            .enumerate()
            .map(|(i, f)| UsableBroker {
                id: i as i32,
                rack: (racks[i] > 0).then(|| format!("r{}", racks[i])),
                fenced: *f,
            })
            .collect();
        match place(&mut SeededRandom::new(seed), &brokers, partitions, factor) {
            Ok(placement) => {
                prop_assert_eq!(placement.len(), partitions);
                for replicas in placement {
                    let distinct: BTreeSet<_> = replicas.iter().collect();
                    prop_assert_eq!(distinct.len(), factor as usize);
                    prop_assert!(!fenced[replicas[0] as usize]);
                }
            }
            Err(_) => {
                prop_assert!(fenced.iter().all(|f| *f) || factor as usize > brokers.len());
            }
        }
    }
}
