//! The SLIM bindings' process-wide runtime, which slim-node uses as its only runtime.

use std::time::Duration;

use slim_bindings::{RuntimeConfig, ServiceConfig, TracingConfig};

/// Initialises the SLIM bindings once per process, with all cores.
///
/// Install the process's tracing subscriber first: the bindings then keep it instead of
/// their own, so SLIM's logs share our format, level and stream.
pub fn init() {
    enforce_identity_binding();
    let runtime = RuntimeConfig {
        n_cores: 0,
        thread_name: "slim-node".to_string(),
        drain_timeout: Duration::from_secs(5),
    };
    // The bindings try to install their own subscriber, fail (ours is there, on purpose) and
    // warn about it; that warning goes to a scoped no-op subscriber instead of the user.
    // Threads the bindings start use the global subscriber, ours.
    let silenced = tracing::subscriber::NoSubscriber::default();
    tracing::subscriber::with_default(silenced, || {
        // The bindings only fail here when they cannot build a runtime; they panic then.
        let _ = slim_bindings::initialize_with_configs(
            runtime,
            TracingConfig::default(),
            &[ServiceConfig::default()],
        );
    });
}

/// SLIM checks that a message's source name id is the one its sender's verified identity
/// derives, and by default only warns when it is not: a member could then send under another
/// member's name. slim-node always refuses such messages (SLIM reads this once, process-wide,
/// before any session exists: called first thing, while the process has one thread).
fn enforce_identity_binding() {
    const VARIABLE: &str = "SLIM_IDENTITY_BINDING";
    if let Ok(value) = std::env::var(VARIABLE) {
        if !value.trim().eq_ignore_ascii_case("enforce") {
            tracing::warn!(%value, "{VARIABLE} is ignored: slim-node always enforces SLIM's identity binding");
        }
    }
    std::env::set_var(VARIABLE, "enforce");
}

/// The runtime every async part of slim-node runs on (one thread pool, not two).
pub fn handle() -> tokio::runtime::Handle {
    slim_bindings::get_runtime()
}
