//! Who sent a message, and what is refused because its sender is not who it claims to be.
//!
//! With MLS on, SLIM adds to every message it decrypts the sender's verified identity
//! ([`PEER_SUBJECT_KEY`](otlp::wire::PEER_SUBJECT_KEY)), and with identity binding enforced
//! (slim-node always enforces it: [`crate::runtime::init`]) it drops a message whose name id
//! that identity does not derive. SLIM does not hold the readable name to the identity: a
//! member's identity is its name (with its own key) or `<name>_<8 random characters>` (shared
//! secret), and a message whose claimed source name is not its identity's is refused here. So whatever
//! a message causes (an acknowledgement credited, a sign of life, an id kept against copies)
//! is credited to who really sent it, never to the name it claims.
//!
//! Every refusal, ours or SLIM's, is counted per sender for `/health` and logged once per
//! sender per [`LOG_EVERY`]: a member that keeps trying cannot flood the log.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use tracing::warn;

/// A sender's refusals are logged at most once per this long (with the count meanwhile).
pub const LOG_EVERY: Duration = Duration::from_secs(60);

/// Whether `subject`, a verified identity, is the name `source`'s: the name itself (a member
/// with a key of its own), or the name with the random suffix SLIM appends to a shared-secret
/// identity (`acme/otel/edge_Ab3dE6gH`).
pub(crate) fn is_identity_of(subject: &str, source: &str) -> bool {
    subject == source
        || subject.strip_prefix(source).is_some_and(|rest| {
            rest.strip_prefix('_').is_some_and(|suffix| {
                suffix.len() == 8 && suffix.bytes().all(|b| b.is_ascii_alphanumeric())
            })
        })
}

/// The name a message's sender is credited with: its claimed source name when it is its
/// verified identity's name (or, without MLS, when there is no identity to check it against).
/// `Err` says why it is refused; the refusal is recorded.
pub(crate) fn sender(source: &str, subject: Option<&str>, what: &str) -> Result<(), ()> {
    match subject {
        Some(subject) if !is_identity_of(subject, source) => {
            refusals().refuse(
                source,
                Some(subject),
                &format!("{what} whose source name is not its MLS-verified identity's"),
            );
            Err(())
        }
        _ => Ok(()),
    }
}

/// What was refused from one sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefusedSender {
    /// The source name the messages claimed.
    pub name: String,
    /// The MLS-verified identity they came with, when known.
    pub identity: Option<String>,
    /// How many were refused.
    pub count: u64,
    /// Why the last one was.
    pub reason: String,
}

/// Messages refused because their sender is not who it claims to be.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Refused {
    /// All refusals of this process.
    pub total: u64,
    /// Per claimed sender and identity.
    pub senders: Vec<RefusedSender>,
}

struct Entry {
    sender: RefusedSender,
    logged_at: Option<Instant>,
    unlogged: u64,
}

/// The refusals of this process (SLIM's identity binding is process-wide too).
#[derive(Default)]
pub(crate) struct Refusals {
    by_sender: Mutex<BTreeMap<(String, Option<String>), Entry>>,
}

/// The process's record of refusals.
pub(crate) fn refusals() -> &'static Refusals {
    static REFUSALS: OnceLock<Refusals> = OnceLock::new();
    REFUSALS.get_or_init(Refusals::default)
}

impl Refusals {
    /// Counts a refused message from `name` (verified as `identity`), and logs it unless this
    /// sender's refusals were logged less than [`LOG_EVERY`] ago.
    pub(crate) fn refuse(&self, name: &str, identity: Option<&str>, reason: &str) {
        self.refuse_at(name, identity, reason, Instant::now());
    }

    fn refuse_at(&self, name: &str, identity: Option<&str>, reason: &str, now: Instant) {
        let mut by_sender = crate::sync::lock(&self.by_sender);
        let entry = by_sender
            .entry((name.to_string(), identity.map(str::to_string)))
            .or_insert_with(|| Entry {
                sender: RefusedSender {
                    name: name.to_string(),
                    identity: identity.map(str::to_string),
                    count: 0,
                    reason: String::new(),
                },
                logged_at: None,
                unlogged: 0,
            });
        entry.sender.count += 1;
        entry.unlogged += 1;
        if entry.sender.reason != reason {
            entry.sender.reason = reason.to_string();
        }
        if entry
            .logged_at
            .is_none_or(|at| now.saturating_duration_since(at) >= LOG_EVERY)
        {
            warn!(
                sender = name,
                identity = identity.unwrap_or("none"),
                refused = entry.unlogged,
                total = entry.sender.count,
                "refused {reason} (logged once a minute per sender)"
            );
            entry.logged_at = Some(now);
            entry.unlogged = 0;
        }
    }

    /// What was refused so far.
    pub(crate) fn snapshot(&self) -> Refused {
        let by_sender = crate::sync::lock(&self.by_sender);
        Refused {
            total: by_sender.values().map(|e| e.sender.count).sum(),
            senders: by_sender.values().map(|e| e.sender.clone()).collect(),
        }
    }

    /// How many times `name`'s messages were logged as refused (test helper).
    #[cfg(test)]
    fn count(&self, name: &str) -> u64 {
        crate::sync::lock(&self.by_sender)
            .values()
            .filter(|e| e.sender.name == name)
            .map(|e| e.sender.count)
            .sum()
    }
}

/// A `tracing` layer that counts SLIM's own refusals (with identity binding enforced SLIM drops
/// a message whose name its sender's verified identity does not derive, and only logs it, once
/// per message). Give it a filter on [`SLIM_REFUSAL_TARGET`] and keep that target out of the
/// log itself: the refusals are logged here, once per sender per [`LOG_EVERY`].
pub struct SlimRefusals;

/// Where SLIM logs an identity it refused.
pub const SLIM_REFUSAL_TARGET: &str = "slim_session::identity_check";

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for SlimRefusals {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() != SLIM_REFUSAL_TARGET {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        if fields.enforced != Some(true) {
            return;
        }
        let reason = format!("by SLIM: {}", fields.message);
        let identity = fields.sub.as_deref().map(|s| s.trim_matches('"'));
        refusals().refuse(
            fields.source.as_deref().unwrap_or("?"),
            identity.filter(|s| *s != "None"),
            &reason,
        );
    }
}

/// The fields of SLIM's refusal event.
#[derive(Default)]
struct Fields {
    source: Option<String>,
    sub: Option<String>,
    enforced: Option<bool>,
    message: String,
}

impl tracing::field::Visit for Fields {
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        if field.name() == "enforced" {
            self.enforced = Some(value);
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        match field.name() {
            "source" => self.source = Some(text),
            // `sub = ?Option<&str>`: `Some("…")` or `None`.
            "sub" => {
                self.sub = Some(
                    text.strip_prefix("Some(")
                        .and_then(|t| t.strip_suffix(')'))
                        .unwrap_or(&text)
                        .to_string(),
                )
            }
            "message" => self.message = text,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_is_a_names_own_with_a_key_or_with_a_shared_secrets_suffix() {
        assert!(is_identity_of("acme/otel/edge", "acme/otel/edge"));
        assert!(is_identity_of("acme/otel/edge_Ab3dE6gH", "acme/otel/edge"));
        assert!(is_identity_of(
            "acme/otel/my_app_Ab3dE6gH",
            "acme/otel/my_app"
        ));
        assert!(is_identity_of("acme/otel/my_app", "acme/otel/my_app"));
        assert!(!is_identity_of("acme/otel/rogue", "acme/otel/edge"));
        assert!(!is_identity_of("acme/otel/edge_x", "acme/otel/edge"));
        assert!(!is_identity_of(
            "acme/otel/edge2_Ab3dE6gH",
            "acme/otel/edge"
        ));
    }

    #[test]
    fn a_message_whose_name_is_not_its_identitys_is_refused_and_counted() {
        let name = "trust-test/ns/impostor";
        assert!(sender(
            name,
            Some("trust-test/ns/rogue_Ab3dE6gH"),
            "an acknowledgement"
        )
        .is_err());
        assert_eq!(refusals().count(name), 1);
        let refused = refusals().snapshot();
        let entry = refused
            .senders
            .iter()
            .find(|s| s.name == name)
            .expect("listed");
        assert_eq!(
            entry.identity.as_deref(),
            Some("trust-test/ns/rogue_Ab3dE6gH")
        );
        assert!(entry.reason.contains("acknowledgement"), "{}", entry.reason);
    }

    #[test]
    fn a_message_from_its_identitys_name_or_without_mls_is_accepted() {
        assert!(sender(
            "trust-test/ns/ok",
            Some("trust-test/ns/ok_Ab3dE6gH"),
            "data"
        )
        .is_ok());
        assert!(sender("trust-test/ns/plain", None, "data").is_ok());
        assert_eq!(refusals().count("trust-test/ns/ok"), 0);
    }

    #[test]
    fn refusals_from_one_sender_are_logged_once_per_minute_and_all_counted() {
        let record = Refusals::default();
        let t0 = Instant::now();
        for i in 0..5 {
            record.refuse_at("a/b/c", None, "data", t0 + Duration::from_secs(i));
        }
        let entry = |r: &Refusals| {
            let map = crate::sync::lock(&r.by_sender);
            let e = &map[&("a/b/c".to_string(), None)];
            (e.sender.count, e.unlogged, e.logged_at)
        };
        assert_eq!(entry(&record), (5, 4, Some(t0)));
        record.refuse_at("a/b/c", None, "data", t0 + LOG_EVERY);
        assert_eq!(entry(&record), (6, 0, Some(t0 + LOG_EVERY)));
    }
}
