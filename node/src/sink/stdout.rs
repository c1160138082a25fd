//! `stdout` sink: one human-readable line per message.

use std::io::{self, Write};

use time::format_description::well_known::Rfc3339;

use super::kind::SinkKind;
use crate::pipeline::QueueKind;
use crate::pipeline::{Delivered, WriteSink};

/// `stdout`.
pub static KIND: SinkKind = SinkKind {
    name: "stdout",
    arg: None,
    summary: "one readable line per message: receive time, sender (`verified=` the MLS-verified identity), signal, `service.name`s, resources, items, message id",
    durable: false,
    queue: QueueKind::Memory,
    options: &[],
    open: |_, _| Ok(Box::new(StdoutSink)),
};

/// Prints `TIME from=FROM [verified=ID] signal=SIGNAL services=… resources=N ITEMS=N id=…`.
pub struct StdoutSink;

impl crate::pipeline::Sink for StdoutSink {
    fn run(self: Box<Self>, input: crate::pipeline::SinkInput) -> crate::pipeline::SinkFuture {
        crate::pipeline::run_blocking(*self, input)
    }
}

/// The line printed for one message.
pub fn line(d: &Delivered) -> String {
    let summary = d.payload.request().summary();
    let signal = d.payload.signal();
    let services = if summary.services.is_empty() {
        "-".to_string()
    } else {
        summary.services.into_iter().collect::<Vec<_>>().join(",")
    };
    let verified = d
        .verified_sender
        .as_deref()
        .map_or(String::new(), |v| format!(" verified={v}"));
    format!(
        "{time} from={from}{verified} signal={signal} services={services} resources={resources} {items}={count} id={id}",
        time = d.received_at.format(&Rfc3339).unwrap_or_default(),
        from = d.from,
        resources = summary.resources,
        items = signal.item_name().replace(' ', "_"),
        count = summary.items,
        id = d.message_id.as_deref().unwrap_or("-"),
    )
}

impl WriteSink for StdoutSink {
    fn write(&mut self, d: &Delivered) -> io::Result<()> {
        let mut out = io::stdout().lock();
        writeln!(out, "{}", line(d))?;
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use otlp::{json, Signal};

    #[test]
    fn line_names_sender_signal_services_and_counts() {
        let request = json::from_json(
            Signal::Traces,
            br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"test-service"}}]},"scopeSpans":[{"spans":[{"name":"a"},{"name":"b"}]}]}]}"#,
        )
        .unwrap();
        let d = Delivered {
            received_at: time::macros::datetime!(2026-11-23 12:00:00 UTC),
            from: "agntcy/otel/receiver".into(),
            verified_sender: Some("agntcy/otel/receiver".into()),
            message_id: Some("abc".into()),
            payload: otlp::Encoded::from_request(request),
        };
        assert_eq!(
            line(&d),
            "2026-11-23T12:00:00Z from=agntcy/otel/receiver verified=agntcy/otel/receiver signal=traces services=test-service resources=1 spans=2 id=abc"
        );
    }
}
