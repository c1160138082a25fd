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

/// `text` with control characters (a newline, an escape sequence) and backslashes escaped,
/// so that what a sender wrote can neither forge a line nor drive the terminal.
fn escaped(text: &str) -> String {
    if !text.chars().any(|c| c.is_control() || c == '\\') {
        return text.to_string();
    }
    text.chars()
        .map(|c| {
            if c.is_control() || c == '\\' {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The line printed for one message; what the sender wrote is [`escaped`].
pub fn line(d: &Delivered) -> String {
    let summary = d.payload.request().summary();
    let signal = d.payload.signal();
    let services = if summary.services.is_empty() {
        "-".to_string()
    } else {
        summary
            .services
            .iter()
            .map(|s| escaped(s))
            .collect::<Vec<_>>()
            .join(",")
    };
    let verified = d
        .verified_sender
        .as_deref()
        .map_or(String::new(), |v| format!(" verified={}", escaped(v)));
    format!(
        "{time} from={from}{verified} signal={signal} services={services} resources={resources} {items}={count} id={id}",
        time = d.received_at.format(&Rfc3339).unwrap_or_default(),
        from = escaped(&d.from),
        resources = summary.resources,
        items = signal.item_name().replace(' ', "_"),
        count = summary.items,
        id = escaped(d.message_id.as_deref().unwrap_or("-")),
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

    #[test]
    fn a_newline_or_escape_in_a_service_name_cannot_forge_a_line() {
        let request = json::from_json(
            Signal::Logs,
            br#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"evil\n2026-11-23T12:00:00Z from=acme/otel/trusted\u001b[2J"}}]},"scopeLogs":[{"logRecords":[{}]}]}]}"#,
        )
        .unwrap();
        let d = Delivered {
            received_at: time::macros::datetime!(2026-11-23 12:00:00 UTC),
            from: "agntcy/otel/receiver".into(),
            verified_sender: None,
            message_id: Some("id\r".into()),
            payload: otlp::Encoded::from_request(request),
        };
        let printed = line(&d);
        assert!(!printed.chars().any(char::is_control), "{printed:?}");
        assert!(
            printed.contains(r"services=evil\n2026") && printed.contains(r"\u{1b}[2J"),
            "{printed}"
        );
        assert!(printed.ends_with(r"id=id\r"), "{printed}");
    }
}
