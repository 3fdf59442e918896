//! Broker-wide byte budgets for the memory clients control: request bytes
//! being read and handled (Kafka's `queued.max.request.bytes`), and response
//! bytes built but not yet written to the client.
//!
//! The two behave differently when spent. A connection that needs more
//! request budget waits for it, so it stops reading from its socket and the
//! client's own TCP window pushes back. A Fetch that finds the response
//! budget spent does not wait: it answers with less, down to the first batch
//! alone (which Kafka always returns whole, so it may overdraw the budget, by
//! at most the budget's size again), or with no records once that too is
//! spent. Consumers that read keep making progress while clients that never
//! read hold what they hold, and memory stays bounded however many they are.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use tokio::sync::Semaphore;

/// Bytes of requests that may be buffered at once, over all connections.
///
/// Connections take it as their requests' bytes arrive, not all at once, so
/// several partly read requests could hold all of it, each waiting for more:
/// none could finish. To rule that out, one connection at a time may go on
/// past the budget (it holds the "finisher" token) until its request is
/// handled; the budget is exceeded by at most that one request.
#[derive(Debug)]
pub struct RequestBudget {
    /// One permit per byte; tokio's semaphore serves waiters in order.
    permits: Semaphore,
    /// Permits in all; no charge asks for more, so none waits forever.
    total: usize,
    /// One permit: the right to go on past the budget.
    finisher: Semaphore,
}

impl RequestBudget {
    pub fn new(bytes: usize) -> Arc<Self> {
        let total = bytes.clamp(1, Semaphore::MAX_PERMITS);
        Arc::new(Self {
            permits: Semaphore::new(total),
            total,
            finisher: Semaphore::new(1),
        })
    }

    /// Bytes not held by any connection.
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }
}

/// The part of the request budget one connection holds; given back when
/// dropped.
#[derive(Debug)]
pub struct RequestCharge {
    budget: Arc<RequestBudget>,
    /// Bytes taken from the budget.
    held: usize,
    /// Bytes beyond the budget, while holding the finisher token.
    overdraft: usize,
    finishing: bool,
}

impl RequestCharge {
    pub fn new(budget: Arc<RequestBudget>) -> Self {
        Self {
            budget,
            held: 0,
            overdraft: 0,
            finishing: false,
        }
    }

    /// Holds at least `bytes` (at most the whole budget's size), waiting
    /// until other connections give enough back or this one becomes the
    /// finisher. Cancel-safe: a wait that is dropped takes nothing.
    pub async fn grow_to(&mut self, bytes: usize) {
        let bytes = bytes.min(self.budget.total);
        let have = self.held + self.overdraft;
        if bytes <= have {
            return;
        }
        let more = u32::try_from(bytes - have).unwrap_or(u32::MAX);
        if self.finishing {
            self.overdraft += more as usize;
            return;
        }
        if let Ok(permit) = self.budget.permits.try_acquire_many(more) {
            permit.forget();
            self.held += more as usize;
            return;
        }
        // Neither semaphore is ever closed, so one branch completes.
        tokio::select! {
            Ok(permit) = self.budget.permits.acquire_many(more) => {
                permit.forget();
                self.held += more as usize;
            }
            Ok(token) = self.budget.finisher.acquire() => {
                token.forget();
                self.finishing = true;
                self.overdraft += more as usize;
            }
            else => {}
        }
    }

    /// Gives back all but `bytes`, the overdraft first; the finisher token
    /// goes back with the last of it.
    pub fn shrink_to(&mut self, bytes: usize) {
        let have = self.held + self.overdraft;
        if bytes >= have {
            return;
        }
        let mut excess = have - bytes;
        let from_overdraft = excess.min(self.overdraft);
        self.overdraft -= from_overdraft;
        excess -= from_overdraft;
        if excess > 0 {
            self.budget.permits.add_permits(excess);
            self.held -= excess;
        }
        if self.finishing && self.overdraft == 0 {
            self.finishing = false;
            self.budget.finisher.add_permits(1);
        }
    }

    /// Bytes held, within the budget and past it.
    pub fn held(&self) -> usize {
        self.held + self.overdraft
    }
}

impl Drop for RequestCharge {
    fn drop(&mut self) {
        self.shrink_to(0);
    }
}

/// Bytes of responses built but not yet written, over all connections.
#[derive(Debug)]
pub struct ResponseBudget {
    /// Bytes not charged; below zero while responses overdraw it.
    available: AtomicI64,
    /// Most one response may be granted: an eighth of the budget, so it
    /// takes at least eight clients that stop reading to spend it.
    share: usize,
    /// How low `available` may go: first batches larger than what is left
    /// may overdraw the budget by up to its size again, no further.
    floor: i64,
}

impl ResponseBudget {
    pub fn new(bytes: usize) -> Arc<Self> {
        let bytes = bytes.min(i64::MAX as usize);
        Arc::new(Self {
            available: AtomicI64::new(bytes as i64),
            share: (bytes / 8).max(1),
            floor: -(bytes as i64),
        })
    }

    /// Up to `wanted` bytes, as much as is left and at most one share;
    /// possibly nothing. Never waits.
    pub fn reserve(self: &Arc<Self>, wanted: usize) -> ResponseCharge {
        let wanted = wanted.min(self.share) as i64;
        let mut current = self.available.load(Ordering::Relaxed);
        let granted = loop {
            let take = current.min(wanted).max(0);
            if take == 0 {
                break 0;
            }
            match self.available.compare_exchange_weak(
                current,
                current - take,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break take,
                Err(now) => current = now,
            }
        };
        ResponseCharge {
            budget: self.clone(),
            held: granted,
        }
    }

    /// Bytes not charged (negative while overdrawn).
    pub fn available(&self) -> i64 {
        self.available.load(Ordering::Relaxed)
    }
}

/// Response bytes charged to the budget; given back when dropped, that is
/// once the response has been written (or the connection closed).
#[derive(Debug)]
pub struct ResponseCharge {
    budget: Arc<ResponseBudget>,
    held: i64,
}

impl ResponseCharge {
    /// Bytes granted (or charged, after [`settle`](Self::settle)).
    pub fn granted(&self) -> usize {
        usize::try_from(self.held).unwrap_or(0)
    }

    /// Makes the charge at least `bytes`, past what is left of the budget
    /// if need be (a Fetch answer's first batch goes out whole however
    /// large) but not past the overdraft floor. False, taking nothing, if
    /// that floor is reached.
    pub fn extend_to(&mut self, bytes: usize) -> bool {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        let more = bytes - self.held;
        if more <= 0 {
            return true;
        }
        let available = &self.budget.available;
        let mut current = available.load(Ordering::Relaxed);
        loop {
            if current.saturating_sub(more) < self.budget.floor {
                return false;
            }
            match available.compare_exchange_weak(
                current,
                current - more,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.held = bytes;
                    return true;
                }
                Err(now) => current = now,
            }
        }
    }

    /// Gives back all of the charge but `used` bytes.
    pub fn settle(&mut self, used: usize) {
        let used = i64::try_from(used).unwrap_or(i64::MAX);
        if used < self.held {
            self.budget
                .available
                .fetch_add(self.held - used, Ordering::Relaxed);
            self.held = used;
        }
    }
}

impl Drop for ResponseCharge {
    fn drop(&mut self) {
        self.settle(0);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn request_charges_wait_for_bytes_given_back() {
        let budget = RequestBudget::new(100);
        let mut first = RequestCharge::new(budget.clone());
        first.grow_to(80).await;
        let mut second = RequestCharge::new(budget.clone());
        second.grow_to(20).await;
        assert_eq!(budget.available(), 0);
        // Spent: one more goes on as the finisher ...
        let mut finisher = RequestCharge::new(budget.clone());
        finisher.grow_to(10).await;
        assert_eq!(finisher.held(), 10);
        // ... and the next waits ...
        let mut third = RequestCharge::new(budget.clone());
        let waited = tokio::time::timeout(Duration::from_millis(50), third.grow_to(10)).await;
        assert!(waited.is_err());
        assert_eq!(third.held(), 0, "an abandoned wait takes nothing");
        // ... until bytes are given back.
        first.shrink_to(50);
        third.grow_to(10).await;
        assert_eq!(
            (first.held(), third.held(), budget.available()),
            (50, 10, 20)
        );
        drop((first, second, third, finisher));
        assert_eq!(budget.available(), 100);
    }

    #[tokio::test]
    async fn partly_read_requests_holding_the_whole_budget_still_finish() {
        let budget = RequestBudget::new(100);
        let mut a = RequestCharge::new(budget.clone());
        let mut b = RequestCharge::new(budget.clone());
        a.grow_to(60).await;
        b.grow_to(40).await;
        // Both need more and nothing is left: one goes on past the budget.
        let wait = Duration::from_millis(50);
        assert!(tokio::time::timeout(wait, a.grow_to(90)).await.is_ok());
        assert!(tokio::time::timeout(wait, a.grow_to(100)).await.is_ok());
        assert!(tokio::time::timeout(wait, b.grow_to(80)).await.is_err());
        // Its request handled, it gives everything back, the token too.
        a.shrink_to(0);
        assert!(tokio::time::timeout(wait, b.grow_to(80)).await.is_ok());
        assert_eq!(b.held(), 80);
        drop((a, b));
        assert_eq!(budget.available(), 100);
        assert_eq!(budget.finisher.available_permits(), 1);
    }

    #[tokio::test]
    async fn request_charges_never_ask_for_more_than_the_budget() {
        let budget = RequestBudget::new(100);
        let mut charge = RequestCharge::new(budget.clone());
        charge.grow_to(1_000).await;
        assert_eq!(charge.held(), 100);
    }

    #[test]
    fn responses_get_at_most_a_share_and_what_is_left() {
        let budget = ResponseBudget::new(800);
        let a = budget.reserve(1_000);
        assert_eq!(a.granted(), 100, "one eighth of the budget");
        let held: Vec<_> = (0..7).map(|_| budget.reserve(100)).collect();
        assert_eq!(budget.available(), 0);
        let none = budget.reserve(100);
        assert_eq!(none.granted(), 0);
        drop(held);
        assert_eq!(budget.available(), 700);
        drop((a, none));
        assert_eq!(budget.available(), 800);
    }

    #[test]
    fn settling_returns_the_unused_part() {
        let budget = ResponseBudget::new(800);
        let mut small = budget.reserve(100);
        small.settle(30);
        assert_eq!(budget.available(), 770);
        drop(small);
        assert_eq!(budget.available(), 800);
    }

    #[test]
    fn first_batches_overdraw_by_at_most_the_budget_again() {
        let budget = ResponseBudget::new(800);
        let held: Vec<_> = (0..8).map(|_| budget.reserve(100)).collect();
        let mut first = budget.reserve(100);
        assert_eq!(first.granted(), 0);
        // A first batch larger than anything left is still charged ...
        assert!(first.extend_to(500));
        let mut second = budget.reserve(100);
        assert!(second.extend_to(300));
        assert_eq!(budget.available(), -800);
        // ... down to the floor, and no further.
        let mut third = budget.reserve(100);
        assert!(!third.extend_to(1));
        assert_eq!((third.granted(), budget.available()), (0, -800));
        drop((held, first, second, third));
        assert_eq!(budget.available(), 800);
    }
}
