//! Broker-wide byte budgets for the memory clients control: request bytes
//! being read and handled (Kafka's `queued.max.request.bytes`), and response
//! bytes built but not yet written to the client.
//!
//! The two behave differently when spent. A connection that needs more
//! request budget waits for it, so it stops reading from its socket and the
//! client's own TCP window pushes back. A Fetch that finds the response
//! budget spent does not wait: it answers with less (down to the first
//! batch alone, which Kafka always returns whole), so consumers that do read
//! keep making progress while clients that never read hold what they hold.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use tokio::sync::Semaphore;

/// Bytes of requests that may be buffered at once, over all connections.
#[derive(Debug)]
pub struct RequestBudget {
    /// One permit per byte; tokio's semaphore serves waiters in order.
    permits: Semaphore,
    /// Permits in all; no charge asks for more, so none waits forever.
    total: usize,
}

impl RequestBudget {
    pub fn new(bytes: usize) -> Arc<Self> {
        let total = bytes.clamp(1, Semaphore::MAX_PERMITS);
        Arc::new(Self {
            permits: Semaphore::new(total),
            total,
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
    held: usize,
}

impl RequestCharge {
    pub fn new(budget: Arc<RequestBudget>) -> Self {
        Self { budget, held: 0 }
    }

    /// Holds at least `bytes` (at most the whole budget), waiting until
    /// other connections give enough back. Cancel-safe: a wait that is
    /// dropped takes nothing.
    pub async fn grow_to(&mut self, bytes: usize) {
        let bytes = bytes.min(self.budget.total);
        if bytes <= self.held {
            return;
        }
        let more = u32::try_from(bytes - self.held).unwrap_or(u32::MAX);
        // The semaphore is never closed, so this only ever succeeds.
        if let Ok(permit) = self.budget.permits.acquire_many(more).await {
            permit.forget();
            self.held += more as usize;
        }
    }

    /// Gives back all but `bytes`.
    pub fn shrink_to(&mut self, bytes: usize) {
        if bytes < self.held {
            self.budget.permits.add_permits(self.held - bytes);
            self.held = bytes;
        }
    }

    pub fn held(&self) -> usize {
        self.held
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
}

impl ResponseBudget {
    pub fn new(bytes: usize) -> Arc<Self> {
        let bytes = bytes.min(i64::MAX as usize);
        Arc::new(Self {
            available: AtomicI64::new(bytes as i64),
            share: (bytes / 8).max(1),
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

    /// Charges exactly `used` bytes: gives back what was granted and not
    /// used, or takes the excess even past the budget (a Fetch answer's
    /// first batch goes out whole however large).
    pub fn settle(&mut self, used: usize) {
        let used = i64::try_from(used).unwrap_or(i64::MAX);
        self.budget
            .available
            .fetch_add(self.held - used, Ordering::Relaxed);
        self.held = used;
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
        // Spent: the next one waits ...
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
        drop(first);
        drop(second);
        drop(third);
        assert_eq!(budget.available(), 100);
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
    fn settling_returns_the_unused_part_or_overdraws() {
        let budget = ResponseBudget::new(800);
        let mut small = budget.reserve(100);
        small.settle(30);
        assert_eq!(budget.available(), 770);
        let mut spent = budget.reserve(0);
        // A first batch larger than anything granted is still charged.
        spent.settle(1_000);
        assert_eq!(budget.available(), -230);
        assert_eq!(budget.reserve(10).granted(), 0);
        drop(spent);
        drop(small);
        assert_eq!(budget.available(), 800);
    }
}
