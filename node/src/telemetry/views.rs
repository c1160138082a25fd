//! Views: which instruments, which attributes and which buckets reach the destinations. The
//! config file's `[[telemetry.view]]` tables (or `--telemetry-view JSON`) say, for the
//! instruments whose name matches `instrument` (`*` matches any run of characters):
//! `attributes` (the keys to keep), `buckets` (histogram boundaries) and `drop = true`. The
//! first view that matches an instrument decides; instruments no view matches keep all their
//! attributes, and durations and sizes get the default buckets.

use opentelemetry::Key;
use opentelemetry_sdk::metrics::{Aggregation, Instrument, InstrumentKind, Stream};
use serde::Deserialize;

/// One view, as the config file writes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewSpec {
    /// The instruments it applies to: a name, `*` matching any run of characters.
    pub instrument: String,
    /// The attribute keys to keep (the others are dropped); all when absent.
    #[serde(default)]
    pub attributes: Option<Vec<String>>,
    /// Histogram boundaries, ascending.
    #[serde(default)]
    pub buckets: Option<Vec<f64>>,
    /// Leave these instruments out altogether.
    #[serde(default)]
    pub drop: bool,
}

impl std::str::FromStr for ViewSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let view: ViewSpec = serde_json::from_str(s).map_err(|e| format!("a view: {e}"))?;
        if let Some(buckets) = &view.buckets {
            if buckets.windows(2).any(|w| w[0] >= w[1]) || buckets.iter().any(|b| !b.is_finite()) {
                return Err(format!(
                    "view {}: buckets must be finite and ascending, got {buckets:?}",
                    view.instrument
                ));
            }
        }
        if view.instrument.is_empty() {
            return Err("a view needs an instrument name (or a pattern with *)".into());
        }
        Ok(view)
    }
}

/// Whether `name` matches `pattern`, where `*` matches any run of characters.
fn matches(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// The stream `views` (then the defaults, `default_buckets`) give `instrument`.
pub(super) fn stream(
    views: &[ViewSpec],
    instrument: &Instrument,
    default_buckets: impl Fn(&Instrument) -> Option<&'static [f64]>,
) -> Option<Stream> {
    let view = views
        .iter()
        .find(|v| matches(&v.instrument, instrument.name()));
    let mut builder = Stream::builder();
    let mut changed = false;
    if let Some(view) = view {
        if view.drop {
            return Stream::builder()
                .with_aggregation(Aggregation::Drop)
                .build()
                .ok();
        }
        if let Some(keys) = &view.attributes {
            builder = builder.with_allowed_attribute_keys(keys.iter().map(|k| Key::new(k.clone())));
            changed = true;
        }
    }
    // Buckets make a histogram of what records a histogram, never of a counter or gauge.
    let histogram = instrument.kind() == InstrumentKind::Histogram;
    let buckets = view
        .and_then(|v| v.buckets.clone())
        .or_else(|| default_buckets(instrument).map(<[f64]>::to_vec))
        .filter(|_| histogram);
    if let Some(boundaries) = buckets {
        builder = builder.with_aggregation(Aggregation::ExplicitBucketHistogram {
            boundaries,
            record_min_max: true,
        });
        changed = true;
    }
    if changed {
        builder.build().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_matches_any_run_of_characters_at_its_stars() {
        assert!(matches(
            "http.server.request.duration",
            "http.server.request.duration"
        ));
        assert!(matches("*", "anything"));
        assert!(matches("process.*", "process.cpu.time"));
        assert!(matches("*.duration", "http.server.request.duration"));
        assert!(matches("slim_node.*.messages", "slim_node.outbox.messages"));
        assert!(!matches("process.*", "http.server.request.duration"));
        assert!(!matches("http.server", "http.server.request.duration"));
    }

    #[test]
    fn a_view_reads_from_json_and_refuses_buckets_out_of_order() {
        let v: ViewSpec =
            r#"{"instrument":"http.*","attributes":["http.route"],"buckets":[0.1,1]}"#
                .parse()
                .unwrap();
        assert_eq!(v.attributes, Some(vec!["http.route".to_string()]));
        assert!(r#"{"instrument":"x","buckets":[1,0.1]}"#.parse::<ViewSpec>().is_err());
        assert!(r#"{"instrument":"x","colour":"red"}"#.parse::<ViewSpec>().unwrap_err().contains("colour"));
    }
}
