//! Fault injection at the protocol level, for testing clients: a table of
//! rules that make chosen requests fail with an error code, wait, or lose
//! their connection. Rules are added while the broker runs, through the
//! admin listener (`admin.rs`, off unless `--admin-listen` is given);
//! `dispatch()` asks [`intercept`] about every request.
//!
//! This is not the disk fault injection of `--fault-injection` (the log
//! engine's I/O seam); that one fails file operations, this one requests.

pub mod admin;
mod inject;
mod names;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};

pub use inject::intercept;

/// Why a rule could not be added.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    #[error("unknown Kafka API {0:?} (use a name such as Produce, Fetch, JoinGroup, or any)")]
    UnknownApi(String),
    #[error("unknown Kafka error {0:?} (use a name such as NOT_LEADER_OR_FOLLOWER, or a code)")]
    UnknownError(String),
    #[error("bad latency {0:?} (use a duration such as 500ms, 2s or 1m)")]
    BadLatency(String),
    #[error("give exactly one of error, latency and drop_connection")]
    ActionCount,
    #[error("probability must be between 0 and 1, not {0}")]
    BadProbability(f64),
    #[error("count must be at least 1")]
    ZeroCount,
    #[error("a topic filter needs api Produce or Fetch (the APIs whose topics are matched)")]
    TopicNeedsProduceOrFetch,
    #[error("{api:?} cannot answer with an injected error (supported: {supported})")]
    ErrorUnsupported { api: ApiKey, supported: String },
}

/// A rule as a client asks for it (the admin API's `POST /faults` body).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// A Kafka API name (case-insensitive), or `any`/absent for every API.
    #[serde(default)]
    pub api: Option<String>,
    /// Only requests naming this topic (Produce and Fetch).
    #[serde(default)]
    pub topic: Option<String>,
    /// A Kafka error name such as `NOT_LEADER_OR_FOLLOWER`, or its code.
    #[serde(default)]
    pub error: Option<String>,
    /// A delay such as `500ms` or `2s`.
    #[serde(default)]
    pub latency: Option<String>,
    #[serde(default)]
    pub drop_connection: bool,
    /// Fire this many times, then expire; absent: until cleared.
    #[serde(default)]
    pub count: Option<u64>,
    /// The chance that a matching request is hit; absent: 1.
    #[serde(default)]
    pub probability: Option<f64>,
}

/// What a rule does to a request it fires on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Answer with this error code, for the partitions the rule's topic
    /// filter picks (all when it has none), or as the top-level error.
    Error(ResponseError),
    /// Handle the request, but only after this long.
    Latency(Duration),
    /// Close the connection instead of handling the request.
    DropConnection,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Error(e) => write!(f, "error {}", names::error_name(*e)),
            Action::Latency(d) => write!(f, "latency {}ms", d.as_millis()),
            Action::DropConnection => f.write_str("drop-connection"),
        }
    }
}

/// One rule of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: u64,
    /// `None`: every API.
    pub api: Option<ApiKey>,
    pub topic: Option<String>,
    pub action: Action,
    /// Firings left before the rule expires; `None`: no limit.
    pub remaining: Option<u64>,
    pub probability: f64,
    /// How often it has fired.
    pub fired: u64,
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.api {
            Some(api) => write!(f, "rule {}: {api:?}", self.id)?,
            None => write!(f, "rule {}: any API", self.id)?,
        }
        if let Some(topic) = &self.topic {
            write!(f, " to topic {topic}")?;
        }
        write!(f, ", {}", self.action)?;
        if let Some(n) = self.remaining {
            write!(f, ", {n} time(s)")?;
        }
        if self.probability < 1.0 {
            write!(f, ", with probability {}", self.probability)?;
        }
        Ok(())
    }
}

/// A rule as the admin API shows it.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct RuleView {
    pub id: u64,
    pub api: String,
    pub topic: Option<String>,
    pub action: String,
    pub error: Option<String>,
    pub latency_ms: Option<u64>,
    pub remaining: Option<u64>,
    pub probability: f64,
    pub fired: u64,
}

impl Rule {
    pub fn view(&self) -> RuleView {
        let (kind, error, latency_ms) = match self.action {
            Action::Error(e) => ("error", Some(names::error_name(e)), None),
            Action::Latency(d) => (
                "latency",
                None,
                Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            ),
            Action::DropConnection => ("drop-connection", None, None),
        };
        RuleView {
            id: self.id,
            api: self
                .api
                .map_or_else(|| "any".to_string(), |a| format!("{a:?}")),
            topic: self.topic.clone(),
            action: kind.to_string(),
            error,
            latency_ms,
            remaining: self.remaining,
            probability: self.probability,
            fired: self.fired,
        }
    }

    /// Whether the rule applies to a request of `api` naming `topics`
    /// (`None`: the topics were not looked at, as no rule for this API
    /// filters on them).
    fn matches(&self, api: ApiKey, topics: Option<&[String]>) -> bool {
        if self.api.is_some_and(|a| a != api) {
            return false;
        }
        if let Action::Error(_) = self.action {
            if !inject::answers_with_error(api) {
                return false;
            }
        }
        match &self.topic {
            None => true,
            Some(t) => topics.is_some_and(|ts| ts.iter().any(|x| x == t)),
        }
    }
}

/// A rule that fired on a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Fired {
    pub rule: u64,
    pub topic: Option<String>,
    pub action: Action,
}

/// The rules in force. Empty (the usual case), it costs a request one
/// atomic load.
#[derive(Debug, Default)]
pub struct FaultTable {
    rules: Mutex<Vec<Rule>>,
    /// How many rules `rules` holds, read without the lock.
    len: AtomicUsize,
    /// The last id handed out.
    next_id: Mutex<u64>,
}

impl FaultTable {
    pub fn is_empty(&self) -> bool {
        self.len.load(Ordering::Acquire) == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Rule>> {
        // A panic under this lock leaves a consistent Vec: keep going.
        self.rules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Checks `spec` and adds it as a new rule.
    pub fn add(&self, spec: &RuleSpec) -> Result<Rule, SpecError> {
        let api = match spec.api.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(a) if a.eq_ignore_ascii_case("any") => None,
            Some(a) => Some(names::parse_api(a).ok_or_else(|| SpecError::UnknownApi(a.into()))?),
        };
        let action = match (&spec.error, &spec.latency, spec.drop_connection) {
            (Some(e), None, false) => Action::Error(
                names::parse_error(e).ok_or_else(|| SpecError::UnknownError(e.into()))?,
            ),
            (None, Some(l), false) => Action::Latency(
                names::parse_duration(l).ok_or_else(|| SpecError::BadLatency(l.into()))?,
            ),
            (None, None, true) => Action::DropConnection,
            _ => return Err(SpecError::ActionCount),
        };
        let probability = spec.probability.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&probability) {
            return Err(SpecError::BadProbability(probability));
        }
        if spec.count == Some(0) {
            return Err(SpecError::ZeroCount);
        }
        let topic = spec.topic.clone().filter(|t| !t.is_empty());
        if topic.is_some() && !matches!(api, Some(ApiKey::Produce | ApiKey::Fetch)) {
            return Err(SpecError::TopicNeedsProduceOrFetch);
        }
        if let (Action::Error(_), Some(api)) = (action, api) {
            if !inject::answers_with_error(api) {
                return Err(SpecError::ErrorUnsupported {
                    api,
                    supported: inject::error_apis(),
                });
            }
        }
        let id = {
            let mut next = self
                .next_id
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *next += 1;
            *next
        };
        let rule = Rule {
            id,
            api,
            topic,
            action,
            remaining: spec.count,
            probability,
            fired: 0,
        };
        let mut rules = self.lock();
        rules.push(rule.clone());
        self.len.store(rules.len(), Ordering::Release);
        Ok(rule)
    }

    pub fn list(&self) -> Vec<Rule> {
        self.lock().clone()
    }

    /// Removes every rule; returns how many there were.
    pub fn clear(&self) -> usize {
        let mut rules = self.lock();
        let n = rules.len();
        rules.clear();
        self.len.store(0, Ordering::Release);
        n
    }

    /// Whether a rule for `api` filters on topics, so the request's topics
    /// must be read before [`FaultTable::fire`].
    pub fn wants_topics(&self, api: ApiKey) -> bool {
        self.lock()
            .iter()
            .any(|r| r.topic.is_some() && r.api.is_none_or(|a| a == api))
    }

    /// The rules that fire on a request of `api` naming `topics`: every
    /// matching latency rule, and the first matching error or
    /// drop-connection rule. `roll` draws a number in [0, 1) for each
    /// matching rule; a rule fires when it is below its probability. Rules
    /// whose count runs out are removed.
    pub fn fire(
        &self,
        api: ApiKey,
        topics: Option<&[String]>,
        mut roll: impl FnMut() -> f64,
    ) -> Vec<Fired> {
        let mut rules = self.lock();
        let mut fired = Vec::new();
        let mut ended = false;
        for rule in rules.iter_mut() {
            let terminal = !matches!(rule.action, Action::Latency(_));
            if (terminal && ended) || !rule.matches(api, topics) {
                continue;
            }
            if rule.probability < 1.0 && roll() >= rule.probability {
                continue;
            }
            ended |= terminal;
            rule.fired += 1;
            if let Some(left) = rule.remaining.as_mut() {
                *left = left.saturating_sub(1);
            }
            fired.push(Fired {
                rule: rule.id,
                topic: rule.topic.clone(),
                action: rule.action,
            });
        }
        rules.retain(|r| r.remaining != Some(0));
        self.len.store(rules.len(), Ordering::Release);
        fired
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn spec(api: &str, error: &str) -> RuleSpec {
        RuleSpec {
            api: Some(api.into()),
            error: Some(error.into()),
            ..RuleSpec::default()
        }
    }

    fn always() -> f64 {
        0.5
    }

    fn topics(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn api_names_are_case_insensitive_and_errors_are_kafka_names() {
        let table = FaultTable::default();
        let rule = table
            .add(&spec("produce", "NOT_LEADER_OR_FOLLOWER"))
            .unwrap();
        assert_eq!(rule.api, Some(ApiKey::Produce));
        assert_eq!(
            rule.action,
            Action::Error(ResponseError::NotLeaderOrFollower)
        );
        let rule = table.add(&spec("JOINGROUP", "not_coordinator")).unwrap();
        assert_eq!(rule.api, Some(ApiKey::JoinGroup));
        assert_eq!(rule.id, 2);
        assert_eq!(
            table.add(&spec("Nope", "NOT_COORDINATOR")),
            Err(SpecError::UnknownApi("Nope".into()))
        );
        assert_eq!(
            table.add(&spec("Produce", "NOT_AN_ERROR")),
            Err(SpecError::UnknownError("NOT_AN_ERROR".into()))
        );
    }

    #[test]
    fn rule_matches_only_its_api() {
        let table = FaultTable::default();
        table
            .add(&spec("Produce", "NOT_LEADER_OR_FOLLOWER"))
            .unwrap();
        assert!(table.fire(ApiKey::Fetch, None, always).is_empty());
        assert!(table.fire(ApiKey::Metadata, None, always).is_empty());
        assert_eq!(table.fire(ApiKey::Produce, None, always).len(), 1);
    }

    #[test]
    fn topic_filter_matches_only_requests_naming_the_topic() {
        let table = FaultTable::default();
        let mut s = spec("Produce", "NOT_LEADER_OR_FOLLOWER");
        s.topic = Some("orders".into());
        table.add(&s).unwrap();
        assert!(table.wants_topics(ApiKey::Produce));
        assert!(!table.wants_topics(ApiKey::Fetch));
        let other = topics(&["audit"]);
        assert!(table.fire(ApiKey::Produce, Some(&other), always).is_empty());
        assert!(table.fire(ApiKey::Produce, None, always).is_empty());
        let both = topics(&["audit", "orders"]);
        let fired = table.fire(ApiKey::Produce, Some(&both), always);
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].topic.as_deref(), Some("orders"));
    }

    #[test]
    fn topic_filter_needs_produce_or_fetch() {
        let table = FaultTable::default();
        let mut s = spec("JoinGroup", "NOT_COORDINATOR");
        s.topic = Some("orders".into());
        assert_eq!(table.add(&s), Err(SpecError::TopicNeedsProduceOrFetch));
    }

    #[test]
    fn count_expires_the_rule_after_that_many_firings() {
        let table = FaultTable::default();
        let mut s = spec("Produce", "NOT_LEADER_OR_FOLLOWER");
        s.count = Some(3);
        table.add(&s).unwrap();
        for left in [2, 1] {
            assert_eq!(table.fire(ApiKey::Produce, None, always).len(), 1);
            assert_eq!(table.list()[0].remaining, Some(left));
        }
        assert_eq!(table.fire(ApiKey::Produce, None, always).len(), 1);
        assert!(table.is_empty());
        assert!(table.fire(ApiKey::Produce, None, always).is_empty());
    }

    #[test]
    fn probability_zero_never_fires_and_one_always_does() {
        let table = FaultTable::default();
        let mut never = spec("Produce", "NOT_LEADER_OR_FOLLOWER");
        never.probability = Some(0.0);
        never.count = Some(1);
        table.add(&never).unwrap();
        for _ in 0..100 {
            assert!(table.fire(ApiKey::Produce, None, fastrand::f64).is_empty());
        }
        assert_eq!(table.list()[0].fired, 0);
        table.clear();
        let mut sure = never.clone();
        sure.probability = Some(1.0);
        sure.count = None;
        table.add(&sure).unwrap();
        for _ in 0..100 {
            assert_eq!(table.fire(ApiKey::Produce, None, fastrand::f64).len(), 1);
        }
        assert_eq!(table.list()[0].fired, 100);
    }

    #[test]
    fn probability_is_compared_with_the_roll() {
        let table = FaultTable::default();
        let mut s = spec("Produce", "NOT_LEADER_OR_FOLLOWER");
        s.probability = Some(0.1);
        table.add(&s).unwrap();
        assert!(table.fire(ApiKey::Produce, None, || 0.1).is_empty());
        assert_eq!(table.fire(ApiKey::Produce, None, || 0.05).len(), 1);
        s.probability = Some(1.5);
        assert_eq!(table.add(&s), Err(SpecError::BadProbability(1.5)));
    }

    #[test]
    fn latencies_add_up_and_the_first_error_wins() {
        let table = FaultTable::default();
        let latency = RuleSpec {
            latency: Some("200ms".into()),
            ..RuleSpec::default()
        };
        table.add(&latency).unwrap();
        table
            .add(&spec("Produce", "NOT_LEADER_OR_FOLLOWER"))
            .unwrap();
        table.add(&spec("Produce", "REQUEST_TIMED_OUT")).unwrap();
        let fired = table.fire(ApiKey::Produce, None, always);
        let actions: Vec<Action> = fired.iter().map(|f| f.action).collect();
        assert_eq!(
            actions,
            [
                Action::Latency(Duration::from_millis(200)),
                Action::Error(ResponseError::NotLeaderOrFollower)
            ]
        );
        // The error rule that did not fire kept its count.
        assert_eq!(table.list()[2].fired, 0);
    }

    #[test]
    fn error_rules_for_any_api_skip_apis_without_error_answers() {
        let table = FaultTable::default();
        let s = RuleSpec {
            error: Some("NOT_COORDINATOR".into()),
            count: Some(1),
            ..RuleSpec::default()
        };
        table.add(&s).unwrap();
        assert!(table.fire(ApiKey::Metadata, None, always).is_empty());
        assert_eq!(table.fire(ApiKey::JoinGroup, None, always).len(), 1);
        assert_eq!(
            table
                .add(&spec("Metadata", "NOT_COORDINATOR"))
                .map(|r| r.id),
            Err(SpecError::ErrorUnsupported {
                api: ApiKey::Metadata,
                supported: inject::error_apis()
            })
        );
    }

    #[test]
    fn rules_read_as_a_sentence() {
        let table = FaultTable::default();
        let mut s = spec("Produce", "NOT_LEADER_OR_FOLLOWER");
        s.topic = Some("orders".into());
        s.count = Some(3);
        assert_eq!(
            table.add(&s).unwrap().to_string(),
            "rule 1: Produce to topic orders, error NOT_LEADER_OR_FOLLOWER, 3 time(s)"
        );
        let s = RuleSpec {
            latency: Some("500ms".into()),
            probability: Some(0.1),
            ..RuleSpec::default()
        };
        assert_eq!(
            table.add(&s).unwrap().to_string(),
            "rule 2: any API, latency 500ms, with probability 0.1"
        );
    }

    #[test]
    fn exactly_one_action_is_required() {
        let table = FaultTable::default();
        let mut s = spec("Produce", "NOT_LEADER_OR_FOLLOWER");
        s.drop_connection = true;
        assert_eq!(table.add(&s), Err(SpecError::ActionCount));
        assert_eq!(table.add(&RuleSpec::default()), Err(SpecError::ActionCount));
    }
}
