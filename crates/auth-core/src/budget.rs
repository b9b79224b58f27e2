//! Sharing one limiter's budget between classes of work: a [`Priority`] decides who gets the
//! next permit when callers of a key queue, and a [`Budget`] label counts what each class drew
//! ([`BudgetUsage`]). The limiter stays platform-neutral: callers name their classes.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

/// Which budget a request draws from; insert it as a request extension to pick a key
/// (e.g. one per account), otherwise the layer's default key is used.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct RateLimitKey(pub Arc<str>);

impl RateLimitKey {
    /// A key.
    pub fn new(key: impl Into<Arc<str>>) -> Self {
        Self(key.into())
    }
}

/// Which caller of a saturated key gets the next permit: every waiting [`Priority::Live`]
/// caller before any [`Priority::Background`] one, first come first served within a priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[non_exhaustive]
pub enum Priority {
    /// Work someone waits for (an order import, a fulfilment); the default.
    #[default]
    Live,
    /// Work that may yield and resume later (a full reconciliation): served only while no
    /// live caller of the key waits.
    Background,
}

impl Priority {
    /// `live` or `background`, for labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Live => "live",
            Priority::Background => "background",
        }
    }
}

/// The class a request's permit is drawn and counted for: a priority and a label (e.g. the
/// flow). Set it per layer ([`RateLimitLayer::budget`](crate::RateLimitLayer::budget)) or per
/// request as an extension, which wins.
///
/// ```
/// use auth_core::{Budget, Priority};
/// let stock = Budget::new(Priority::Background, "stock");
/// assert_eq!(stock.label(), "stock");
/// assert_eq!(Budget::default().priority(), Priority::Live);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Budget {
    priority: Priority,
    label: Arc<str>,
}

impl Budget {
    /// A class with `priority`, counted under `label`.
    pub fn new(priority: Priority, label: impl Into<Arc<str>>) -> Self {
        Self {
            priority,
            label: label.into(),
        }
    }

    /// The priority.
    pub fn priority(&self) -> Priority {
        self.priority
    }

    /// The label (empty for unlabelled callers).
    pub fn label(&self) -> &str {
        &self.label
    }
}

/// What one class drew from a limiter since it was created: permits granted and the time its
/// callers spent waiting for them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BudgetUsage {
    /// The class's label (empty for unlabelled callers).
    pub label: Arc<str>,
    /// The class's priority.
    pub priority: Priority,
    /// Permits granted (requests sent, each retry counted).
    pub permits: u64,
    /// Total time callers waited for those permits.
    pub waited: Duration,
}

/// The callers of one key waiting for a permit, by priority, in arrival order.
#[derive(Default)]
struct Waiters {
    live: VecDeque<u64>,
    background: VecDeque<u64>,
    /// Woken whenever the queue changes, so the new head goes on.
    changed: Arc<Notify>,
}

impl Waiters {
    fn head(&self) -> Option<u64> {
        self.live.front().or(self.background.front()).copied()
    }

    fn is_empty(&self) -> bool {
        self.live.is_empty() && self.background.is_empty()
    }
}

/// Permits granted and time waited, per class (label, priority).
type UsageMap = BTreeMap<(Arc<str>, Priority), (u64, Duration)>;

/// The wait queues of every key and the usage of every class.
#[derive(Default)]
pub(crate) struct Queues {
    next_ticket: Mutex<u64>,
    waiting: Mutex<HashMap<RateLimitKey, Waiters>>,
    usage: Mutex<UsageMap>,
}

impl Queues {
    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<RateLimitKey, Waiters>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `take` (an attempt at a permit) only when nobody waits for `key`, under the queue
    /// lock, so no caller overtakes those already queued.
    pub(crate) fn try_uncontended(&self, key: &RateLimitKey, take: impl FnOnce() -> bool) -> bool {
        let waiting = self.waiting();
        waiting.get(key).is_none_or(Waiters::is_empty) && take()
    }

    /// Queues a caller of `key`; the ticket leaves the queue when dropped.
    pub(crate) fn enqueue<'a>(&'a self, key: &RateLimitKey, priority: Priority) -> Ticket<'a> {
        let id = {
            let mut next = self.next_ticket.lock().unwrap_or_else(|p| p.into_inner());
            *next += 1;
            *next
        };
        let mut waiting = self.waiting();
        let waiters = waiting.entry(key.clone()).or_default();
        match priority {
            Priority::Background => waiters.background.push_back(id),
            // A live caller may become the head: the sleeping background head must see it.
            _ => waiters.live.push_back(id),
        }
        waiters.changed.notify_waiters();
        Ticket {
            queues: self,
            key: key.clone(),
            id,
            changed: Arc::clone(&waiters.changed),
        }
    }

    /// Counts a permit granted to `budget` after `waited`.
    pub(crate) fn record(&self, budget: &Budget, waited: Duration) {
        let mut usage = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        let entry = usage
            .entry((Arc::clone(&budget.label), budget.priority))
            .or_default();
        entry.0 += 1;
        entry.1 += waited;
    }

    /// Every class's usage, by label then priority.
    pub(crate) fn usage(&self) -> Vec<BudgetUsage> {
        let usage = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        usage
            .iter()
            .map(|((label, priority), (permits, waited))| BudgetUsage {
                label: Arc::clone(label),
                priority: *priority,
                permits: *permits,
                waited: *waited,
            })
            .collect()
    }

    /// Callers waiting now for any key, (live, background).
    pub(crate) fn queued(&self) -> (usize, usize) {
        self.waiting().values().fold((0, 0), |(l, b), w| {
            (l + w.live.len(), b + w.background.len())
        })
    }
}

/// A queued caller's place; dropping it (permit taken, or the caller gave up) leaves the queue
/// and wakes the others.
pub(crate) struct Ticket<'a> {
    queues: &'a Queues,
    key: RateLimitKey,
    id: u64,
    changed: Arc<Notify>,
}

impl Ticket<'_> {
    /// Whether this caller is the one to take the key's next permit.
    pub(crate) fn is_head(&self) -> bool {
        let waiting = self.queues.waiting();
        waiting.get(&self.key).and_then(Waiters::head) == Some(self.id)
    }

    /// Notified when the queue changes.
    pub(crate) fn changed(&self) -> Arc<Notify> {
        Arc::clone(&self.changed)
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let mut waiting = self.queues.waiting();
        if let Some(waiters) = waiting.get_mut(&self.key) {
            waiters.live.retain(|id| *id != self.id);
            waiters.background.retain(|id| *id != self.id);
            waiters.changed.notify_waiters();
            if waiters.is_empty() {
                waiting.remove(&self.key);
            }
        }
    }
}
