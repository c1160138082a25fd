//! The SLIM bindings' process-wide runtime, which slim-node uses as its only runtime.

use std::time::Duration;

use slim_bindings::{RuntimeConfig, ServiceConfig, TracingConfig};

/// Initialises the SLIM bindings once per process, with all cores.
///
/// Install the process's tracing subscriber first: the bindings then keep it instead of
/// their own, so SLIM's logs share our format, level and stream.
pub fn init() {
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

/// The runtime every async part of slim-node runs on (one thread pool, not two).
pub fn handle() -> tokio::runtime::Handle {
    slim_bindings::get_runtime()
}
