//! Broker-wide byte budgets for the memory clients control: request bytes
//! being read and handled (Kafka's `queued.max.request.bytes`).
//!
//! A connection that needs more request budget waits for it, so it stops
//! reading from its socket and the client's own TCP window pushes back.

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
}
