#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::records::decode_value;
use super::*;

const T0: i64 = 1_000_000;

fn loaded() -> TxnCoordinator {
    let c = TxnCoordinator::new(TxnConfig::default());
    assert!(c.finish_loading().is_empty());
    c
}

fn granted(r: InitResult) -> (i64, i16, TxnRecord) {
    match r {
        InitResult::Granted {
            producer_id,
            producer_epoch,
            record,
        } => (producer_id, producer_epoch, record),
        other => panic!("expected a grant, got {other:?}"),
    }
}

fn init(c: &TxnCoordinator, id: &str, next_pid: i64) -> (i64, i16) {
    let (pid, epoch, _) = granted(
        c.init_producer_id(id, 60_000, None, T0, || Some(next_pid))
            .unwrap(),
    );
    (pid, epoch)
}

fn parts(list: &[(&str, i32)]) -> Vec<(String, i32)> {
    list.iter().map(|(t, p)| (t.to_string(), *p)).collect()
}

fn state(c: &TxnCoordinator, id: &str) -> TxnState {
    c.describe(&[id.to_string()]).unwrap()[0]
        .clone()
        .unwrap()
        .state
}

#[test]
fn refuses_requests_until_loaded() {
    let c = TxnCoordinator::new(TxnConfig::default());
    let r = c.init_producer_id("t", 1000, None, T0, || Some(1));
    assert_eq!(r, Err(TxnError::CoordinatorLoadInProgress));
}

#[test]
fn new_transactional_id_gets_a_fresh_producer_at_epoch_zero() {
    let c = loaded();
    let (pid, epoch, record) = granted(
        c.init_producer_id("t", 60_000, None, T0, || Some(42))
            .unwrap(),
    );
    assert_eq!((pid, epoch), (42, 0));
    let v = decode_value(record.value.as_deref().unwrap()).unwrap();
    assert_eq!(v.state, TxnState::Empty);
    assert_eq!(v.timeout_ms, 60_000);
    assert_eq!(record.transactional_id, "t");
}

#[test]
fn timeout_above_the_broker_maximum_is_invalid() {
    let c = loaded();
    for bad in [0, -1, 900_001] {
        let r = c.init_producer_id("t", bad, None, T0, || Some(1));
        assert_eq!(r, Err(TxnError::InvalidTransactionTimeout));
    }
}

#[test]
fn commit_walks_ongoing_prepare_complete() {
    let c = loaded();
    let (pid, epoch) = init(&c, "t", 7);
    let rec = c
        .add_partitions("t", pid, epoch, &parts(&[("a", 0), ("b", 1)]), T0)
        .unwrap();
    assert!(rec.is_some());
    assert_eq!(state(&c, "t"), TxnState::Ongoing);
    // Adding a partition already in the transaction writes nothing.
    assert_eq!(
        c.add_partitions("t", pid, epoch, &parts(&[("a", 0)]), T0)
            .unwrap(),
        None
    );
    let (_, completion) = c.end_txn("t", pid, epoch, true, T0).unwrap().unwrap();
    assert!(completion.commit);
    assert_eq!(completion.partitions, parts(&[("a", 0), ("b", 1)]));
    assert_eq!(state(&c, "t"), TxnState::PrepareCommit);
    // A second EndTxn while markers are written must be retried.
    assert_eq!(
        c.end_txn("t", pid, epoch, true, T0),
        Err(TxnError::ConcurrentTransactions)
    );
    assert!(c.complete(&completion, T0).is_some());
    assert_eq!(state(&c, "t"), TxnState::CompleteCommit);
    // A retried commit is answered without a new completion; an abort now
    // is in the wrong state.
    assert_eq!(c.end_txn("t", pid, epoch, true, T0), Ok(None));
    assert_eq!(
        c.end_txn("t", pid, epoch, false, T0),
        Err(TxnError::InvalidTxnState)
    );
}

#[test]
fn end_txn_without_a_transaction_is_invalid_state() {
    let c = loaded();
    let (pid, epoch) = init(&c, "t", 7);
    assert_eq!(
        c.end_txn("t", pid, epoch, true, T0),
        Err(TxnError::InvalidTxnState)
    );
    assert_eq!(
        c.end_txn("t", pid + 1, epoch, true, T0),
        Err(TxnError::InvalidProducerIdMapping)
    );
}

#[test]
fn second_init_aborts_the_ongoing_transaction_and_fences_the_first_producer() {
    let c = loaded();
    let (pid, epoch) = init(&c, "t", 7);
    c.add_partitions("t", pid, epoch, &parts(&[("a", 0)]), T0)
        .unwrap();
    let r = c
        .init_producer_id("t", 60_000, None, T0, || Some(99))
        .unwrap();
    let InitResult::AbortFirst { completion, .. } = r else {
        panic!("expected an abort first, got {r:?}");
    };
    assert!(!completion.commit);
    assert_eq!(completion.producer_epoch, epoch + 1);
    assert_eq!(completion.partitions, parts(&[("a", 0)]));
    // Until the abort completes, the new producer must retry.
    assert_eq!(
        c.init_producer_id("t", 60_000, None, T0, || Some(99)),
        Err(TxnError::ConcurrentTransactions)
    );
    c.complete(&completion, T0).unwrap();
    let (pid2, epoch2) = init(&c, "t", 99);
    assert_eq!(pid2, pid);
    assert_eq!(epoch2, epoch + 2);
    // The first producer is fenced everywhere.
    assert_eq!(
        c.add_partitions("t", pid, epoch, &parts(&[("a", 0)]), T0),
        Err(TxnError::ProducerFenced)
    );
    assert_eq!(
        c.end_txn("t", pid, epoch, true, T0),
        Err(TxnError::ProducerFenced)
    );
    assert_eq!(
        c.check_produce(pid, epoch, "a", 0),
        Err(TxnError::ProducerFenced)
    );
}

#[test]
fn exhausted_epoch_moves_to_a_new_producer_id() {
    let c = loaded();
    let (pid, _) = init(&c, "t", 7);
    let mut last = (pid, 0);
    for _ in 0..(i16::MAX as usize) {
        last = init(&c, "t", 1234);
        if last.0 != pid {
            break;
        }
    }
    assert_eq!(last, (1234, 0));
}

#[test]
fn kip360_init_with_a_stale_epoch_is_fenced() {
    let c = loaded();
    let (pid, epoch) = init(&c, "t", 7);
    let (_, epoch2) = init(&c, "t", 8);
    assert_eq!(epoch2, epoch + 1);
    // Naming the current producer bumps again.
    let (pid3, epoch3, _) = granted(
        c.init_producer_id("t", 60_000, Some((pid, epoch2)), T0, || None)
            .unwrap(),
    );
    assert_eq!((pid3, epoch3), (pid, epoch2 + 1));
    // The previous epoch is a retry of that bump and gets the same answer.
    let (pid4, epoch4, _) = granted(
        c.init_producer_id("t", 60_000, Some((pid, epoch2)), T0, || None)
            .unwrap(),
    );
    assert_eq!((pid4, epoch4), (pid3, epoch3));
    // Older ones are fenced.
    assert_eq!(
        c.init_producer_id("t", 60_000, Some((pid, epoch)), T0, || None),
        Err(TxnError::ProducerFenced)
    );
}

#[test]
fn transaction_open_past_its_timeout_is_aborted_with_a_bumped_epoch() {
    let c = loaded();
    let (pid, epoch, _) = granted(
        c.init_producer_id("t", 1_000, None, T0, || Some(5))
            .unwrap(),
    );
    c.add_partitions("t", pid, epoch, &parts(&[("a", 0)]), T0)
        .unwrap();
    assert!(c.tick(T0 + 1_000).is_empty());
    let out = c.tick(T0 + 1_001);
    assert_eq!(out.len(), 1);
    let (record, completion) = &out[0];
    assert!(record.is_some());
    assert!(!completion.commit);
    assert_eq!(completion.producer_epoch, epoch + 1);
    assert_eq!(state(&c, "t"), TxnState::PrepareAbort);
    c.complete(completion, T0 + 1_002).unwrap();
    assert_eq!(state(&c, "t"), TxnState::CompleteAbort);
    assert_eq!(
        c.end_txn("t", pid, epoch, true, T0),
        Err(TxnError::ProducerFenced)
    );
}

#[test]
fn prepare_left_unfinished_is_handed_out_again() {
    let c = loaded();
    let (pid, epoch) = init(&c, "t", 7);
    c.add_partitions("t", pid, epoch, &parts(&[("a", 0)]), T0)
        .unwrap();
    c.end_txn("t", pid, epoch, false, T0).unwrap().unwrap();
    assert!(c.tick(T0 + 1).is_empty());
    let out = c.tick(T0 + 10_000);
    assert_eq!(out.len(), 1);
    assert!(out[0].0.is_none());
    assert!(!out[0].1.commit);
}

#[test]
fn replay_restores_state_and_reports_unfinished_prepares() {
    let c = loaded();
    let mut log = Vec::new();
    let (pid, epoch, rec) = granted(
        c.init_producer_id("t", 60_000, None, T0, || Some(7))
            .unwrap(),
    );
    log.push(rec);
    log.push(
        c.add_partitions("t", pid, epoch, &parts(&[("a", 0)]), T0)
            .unwrap()
            .unwrap(),
    );
    let (rec, _) = c.end_txn("t", pid, epoch, true, T0).unwrap().unwrap();
    log.push(rec);

    let fresh = TxnCoordinator::new(TxnConfig::default());
    for r in &log {
        fresh.replay(&r.key, r.value.as_deref());
    }
    let pending = fresh.finish_loading();
    assert_eq!(pending.len(), 1);
    assert!(pending[0].commit);
    assert_eq!(pending[0].partitions, parts(&[("a", 0)]));
    assert!(fresh.complete(&pending[0], T0).is_some());
    assert_eq!(state(&fresh, "t"), TxnState::CompleteCommit);
    // A tombstone forgets the id.
    fresh.replay(&records::encode_key("t"), None);
    assert_eq!(
        fresh.describe(&["t".to_string()]).unwrap()[0],
        Err(TxnError::TransactionalIdNotFound)
    );
}

#[test]
fn produce_needs_the_partition_in_the_ongoing_transaction() {
    let c = loaded();
    let (pid, epoch) = init(&c, "t", 7);
    assert_eq!(
        c.check_produce(pid, epoch, "a", 0),
        Err(TxnError::InvalidTxnState)
    );
    c.add_partitions("t", pid, epoch, &parts(&[("a", 0)]), T0)
        .unwrap();
    assert_eq!(c.check_produce(pid, epoch, "a", 0), Ok(()));
    assert_eq!(
        c.check_produce(pid, epoch, "a", 1),
        Err(TxnError::InvalidTxnState)
    );
    assert_eq!(
        c.check_produce(pid + 1, 0, "a", 0),
        Err(TxnError::InvalidProducerIdMapping)
    );
    let verified = c
        .verify_partitions("t", pid, epoch, &parts(&[("a", 0), ("b", 0)]))
        .unwrap();
    assert_eq!(verified, vec![Ok(()), Err(TxnError::InvalidTxnState)]);
}

#[test]
fn list_filters_by_state_and_producer() {
    let c = loaded();
    let (pid, epoch) = init(&c, "a", 1);
    init(&c, "b", 2);
    c.add_partitions("a", pid, epoch, &parts(&[("x", 0)]), T0)
        .unwrap();
    let ongoing = c.list(&["Ongoing".to_string()], &[], -1, T0).unwrap();
    assert_eq!(ongoing.len(), 1);
    assert_eq!(ongoing[0].transactional_id, "a");
    assert_eq!(c.list(&[], &[2], -1, T0).unwrap()[0].transactional_id, "b");
    assert_eq!(c.list(&[], &[], -1, T0).unwrap().len(), 2);
    assert!(c.list(&[], &[], 5_000, T0 + 1_000).unwrap().is_empty());
}

#[test]
fn unloading_forgets_the_ids_of_partitions_led_elsewhere() {
    let c = loaded();
    init(&c, "kept", 1);
    init(&c, "moved", 2);
    assert_eq!(c.unload(|id| id == "moved"), 1);
    assert_eq!(c.unload(|id| id == "moved"), 0);
    assert!(c.describe(&["moved".to_string()]).unwrap()[0].is_err());
    assert_eq!(state(&c, "kept"), TxnState::Empty);
    // Its producer id no longer maps to it.
    assert!(c.check_produce(2, 0, "t", 0).is_err());
}
