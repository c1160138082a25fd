//! What a running node shows of itself, read when the metrics are collected (observable
//! instruments over the same reports `/health` shows): its outbox, its link to SLIM and its
//! members, each sink's counters and queue. Every series carries `slim_node.name`, the node's
//! SLIM name (a process may run two nodes: `up`).

use opentelemetry::metrics::{AsyncInstrument, Meter};
use opentelemetry::KeyValue;
use slim_roles::{LinkState, Liveness, Publisher};

use crate::pipeline::{LatencyRecorder, PerSignal, SinkHandle};
use otlp::Signal;

/// Instruments registered for one node; they report for as long as this is kept.
pub struct NodeMetrics {
    _instruments: Vec<Box<dyn std::any::Any + Send + Sync>>,
}

/// Milliseconds as seconds.
fn secs(ms: Option<u64>) -> f64 {
    ms.map_or(0.0, |ms| ms as f64 / 1000.0)
}

/// A u64 instrument read by `callback`: an observable counter (a running total) or gauge.
fn observe_u64(
    meter: &Meter,
    counter: bool,
    (metric, unit, about): (&'static str, &'static str, &'static str),
    callback: impl Fn(&dyn AsyncInstrument<u64>) + Send + Sync + 'static,
) -> Box<dyn std::any::Any + Send + Sync> {
    if counter {
        Box::new(
            meter
                .u64_observable_counter(metric)
                .with_unit(unit)
                .with_description(about)
                .with_callback(callback)
                .build(),
        )
    } else {
        Box::new(
            meter
                .u64_observable_gauge(metric)
                .with_unit(unit)
                .with_description(about)
                .with_callback(callback)
                .build(),
        )
    }
}

/// Reads one kind of item counts from a sink's report: per reason (if any), per signal.
type ReadItems = fn(&crate::pipeline::ItemReport) -> Vec<(Option<&'static str>, PerSignal)>;

/// Registers `name`'s node (`publisher`) and its `sinks` with `meter`.
pub(super) fn watch(
    meter: &Meter,
    name: String,
    publisher: Publisher,
    sinks: Vec<SinkHandle>,
) -> NodeMetrics {
    let node = KeyValue::new("slim_node.name", name);
    let mut all: Vec<Box<dyn std::any::Any + Send + Sync>> = Vec::new();

    // The outbox: what waits for the members' acknowledgements.
    let outbox_u64 = |metric: &'static str,
                      unit: &'static str,
                      about: &'static str,
                      read: fn(&slim_roles::OutboxStats) -> u64,
                      counter: bool|
     -> Box<dyn std::any::Any + Send + Sync> {
        let (p, n) = (publisher.clone(), node.clone());
        let callback = move |o: &dyn AsyncInstrument<u64>| {
            o.observe(read(&p.outbox()), std::slice::from_ref(&n))
        };
        observe_u64(meter, counter, (metric, unit, about), callback)
    };
    all.push(outbox_u64(
        "slim_node.outbox.messages",
        "{message}",
        "Messages waiting for the members' acknowledgements",
        |s| s.messages as u64,
        false,
    ));
    all.push(outbox_u64(
        "slim_node.outbox.size",
        "By",
        "Bytes waiting for the members' acknowledgements",
        |s| s.bytes as u64,
        false,
    ));
    all.push(outbox_u64(
        "slim_node.outbox.capacity",
        "{message}",
        "The most messages the outbox holds",
        |s| s.max_messages as u64,
        false,
    ));
    all.push(outbox_u64(
        "slim_node.outbox.size_limit",
        "By",
        "The most bytes the outbox holds",
        |s| s.max_bytes as u64,
        false,
    ));
    all.push(outbox_u64(
        "slim_node.outbox.sent",
        "{message}",
        "Messages sent on the channel (each once, re-sends apart)",
        |s| s.sent,
        true,
    ));
    all.push(outbox_u64(
        "slim_node.outbox.resent",
        "{message}",
        "Messages sent again for want of an acknowledgement",
        |s| s.resent,
        true,
    ));
    all.push(outbox_u64(
        "slim_node.outbox.acknowledged",
        "{message}",
        "Messages every member they waited for acknowledged",
        |s| s.acknowledged,
        true,
    ));
    all.push(outbox_u64(
        "slim_node.slim.published.size",
        "By",
        "Payload bytes of the SLIM messages published",
        |s| s.slim_bytes,
        true,
    ));
    all.push(outbox_u64(
        "slim_node.slim.published",
        "{message}",
        "SLIM messages published (frames: several messages may travel in one)",
        |s| s.slim_messages,
        true,
    ));
    {
        let (p, n) = (publisher.clone(), node.clone());
        all.push(Box::new(
            meter
                .f64_observable_gauge("slim_node.outbox.oldest.age")
                .with_unit("s")
                .with_description(
                    "Age of the oldest message waiting for acknowledgements (0 when none waits)",
                )
                .with_callback(move |o| {
                    o.observe(secs(p.outbox().oldest_ms), std::slice::from_ref(&n))
                })
                .build(),
        ));
    }
    {
        let (p, n) = (publisher.clone(), node.clone());
        all.push(Box::new(
            meter
                .f64_observable_gauge("slim_node.outbox.fill")
                .with_unit("1")
                .with_description("How full the outbox is, 0 to 1 (of its message or byte bound)")
                .with_callback(move |o| o.observe(p.outbox().fill(), std::slice::from_ref(&n)))
                .build(),
        ));
    }
    {
        let (sinks, n) = (sinks.clone(), node.clone());
        all.push(Box::new(
            meter
                .f64_observable_gauge("slim_node.sink.queue.fill")
                .with_unit("1")
                .with_description(
                    "How full a sink's queue is, 0 to 1 (of its message or byte bound)",
                )
                .with_callback(move |o| {
                    for sink in &sinks {
                        let report = sink.report();
                        o.observe(
                            report.queue.fill(),
                            &[n.clone(), KeyValue::new("sink", report.name.clone())],
                        );
                    }
                })
                .build(),
        ));
    }
    // The link to SLIM, the members and the trust refusals.
    {
        let (p, n) = (publisher.clone(), node.clone());
        all.push(Box::new(
            meter
                .u64_observable_gauge("slim_node.link.up")
                .with_description("1 while the node is connected to its SLIM server")
                .with_callback(move |o| {
                    let up = p.health().link.state == LinkState::Connected;
                    o.observe(u64::from(up), std::slice::from_ref(&n))
                })
                .build(),
        ));
    }
    {
        let (p, n) = (publisher.clone(), node.clone());
        all.push(Box::new(
            meter
                .u64_observable_counter("slim_node.link.reconnects")
                .with_description("Times the link to SLIM came back after it was lost")
                .with_callback(move |o| {
                    o.observe(p.health().link.reconnects, std::slice::from_ref(&n))
                })
                .build(),
        ));
    }
    {
        let (p, n) = (publisher.clone(), node.clone());
        all.push(Box::new(
            meter
                .u64_observable_gauge("slim_node.role.state")
                .with_description("1 for the state the node's role is in, 0 for the others")
                .with_callback(move |o| {
                    let health = p.health();
                    let now = health.node.state.name();
                    for state in slim_roles::State::NAMES {
                        o.observe(
                            u64::from(state == now),
                            &[
                                n.clone(),
                                KeyValue::new("role", health.node.role.to_string()),
                                KeyValue::new("state", state),
                            ],
                        );
                    }
                })
                .build(),
        ));
    }
    {
        let (p, n) = (publisher.clone(), node.clone());
        all.push(Box::new(
            meter
                .u64_observable_gauge("slim_node.members")
                .with_unit("{member}")
                .with_description("Members of the channel by state (live, lagging, offline)")
                .with_callback(move |o| {
                    let health = p.health();
                    for (state, name) in [
                        (Liveness::Live, "live"),
                        (Liveness::Lagging, "lagging"),
                        (Liveness::Offline, "offline"),
                    ] {
                        let count = health.members.iter().filter(|m| m.state == state).count();
                        o.observe(count as u64, &[n.clone(), KeyValue::new("state", name)]);
                    }
                })
                .build(),
        ));
    }
    {
        let (p, n) = (publisher.clone(), node.clone());
        all.push(Box::new(
            meter
                .u64_observable_counter("slim_node.trust.refused")
                .with_unit("{message}")
                .with_description("Messages refused because their sender is not who it claims to be (this process)")
                .with_callback(move |o| o.observe(p.health().refused.total, std::slice::from_ref(&n)))
                .build(),
        ));
    }
    // Each sink: its counters and its queue.
    let sink_u64 = |metric: &'static str,
                    unit: &'static str,
                    about: &'static str,
                    read: fn(&crate::pipeline::SinkReport) -> u64,
                    counter: bool|
     -> Box<dyn std::any::Any + Send + Sync> {
        let (sinks, n) = (sinks.clone(), node.clone());
        let callback = move |o: &dyn AsyncInstrument<u64>| {
            for sink in &sinks {
                let report = sink.report();
                o.observe(
                    read(&report),
                    &[n.clone(), KeyValue::new("sink", report.name.clone())],
                );
            }
        };
        observe_u64(meter, counter, (metric, unit, about), callback)
    };
    all.push(sink_u64(
        "slim_node.sink.taken",
        "{message}",
        "Messages a sink took",
        |r| r.taken,
        true,
    ));
    all.push(sink_u64(
        "slim_node.sink.delivered",
        "{message}",
        "Messages a sink delivered (wrote, sent, stored)",
        |r| r.delivered,
        true,
    ));
    all.push(sink_u64(
        "slim_node.sink.retried",
        "{message}",
        "Deliveries a sink tried again",
        |r| r.retried,
        true,
    ));
    all.push(sink_u64(
        "slim_node.sink.refused",
        "{message}",
        "Messages a sink's destination refused for good",
        |r| r.refused,
        true,
    ));
    all.push(sink_u64(
        "slim_node.sink.queue.capacity",
        "{message}",
        "The most messages a sink's queue holds",
        |r| r.queue.max_messages as u64,
        false,
    ));
    all.push(sink_u64(
        "slim_node.sink.queue.size_limit",
        "By",
        "The most bytes a sink's queue holds",
        |r| r.queue.max_bytes as u64,
        false,
    ));
    all.push(sink_u64(
        "slim_node.sink.queue.messages",
        "{message}",
        "Messages waiting in a sink's queue",
        |r| r.queue.messages as u64,
        false,
    ));
    all.push(sink_u64(
        "slim_node.sink.queue.size",
        "By",
        "Bytes waiting in a sink's queue",
        |r| r.queue.bytes as u64,
        false,
    ));
    {
        let (sinks, n) = (sinks.clone(), node.clone());
        all.push(Box::new(
            meter
                .u64_observable_counter("slim_node.sink.dropped")
                .with_unit("{message}")
                .with_description("Messages a sink dropped, by reason")
                .with_callback(move |o| {
                    for sink in &sinks {
                        let report = sink.report();
                        for (reason, count) in &report.items.dropped_messages {
                            o.observe(
                                *count,
                                &[
                                    n.clone(),
                                    KeyValue::new("sink", report.name.clone()),
                                    KeyValue::new("reason", reason.code()),
                                ],
                            );
                        }
                    }
                })
                .build(),
        ));
    }
    // Each sink's telemetry items, per signal (the Collector's exporter counters).
    let sink_items = |metric: &'static str,
                      about: &'static str,
                      read: ReadItems|
     -> Box<dyn std::any::Any + Send + Sync> {
        let (sinks, n) = (sinks.clone(), node.clone());
        let callback = move |o: &dyn AsyncInstrument<u64>| {
            for sink in &sinks {
                let report = sink.report();
                for (reason, counts) in read(&report.items) {
                    for (signal, count) in Signal::ALL.iter().zip(counts) {
                        let mut attributes = vec![
                            n.clone(),
                            KeyValue::new("sink", report.name.clone()),
                            KeyValue::new("signal", signal.as_str()),
                        ];
                        if let Some(reason) = reason {
                            attributes.push(KeyValue::new("reason", reason));
                        }
                        o.observe(count, &attributes);
                    }
                }
            }
        };
        observe_u64(meter, true, (metric, "{item}", about), callback)
    };
    all.push(sink_items(
        "slim_node.sink.delivered.items",
        "Telemetry items (spans, metric points, log records) a sink delivered",
        |items| vec![(None, items.delivered)],
    ));
    all.push(sink_items(
        "slim_node.sink.failed.items",
        "Telemetry items of deliveries that failed and are tried again, by reason",
        |items| {
            items
                .failed
                .iter()
                .map(|(r, n)| (Some(r.code()), *n))
                .collect()
        },
    ));
    all.push(sink_items(
        "slim_node.sink.dropped.items",
        "Telemetry items a sink dropped for good, by reason",
        |items| {
            items
                .dropped
                .iter()
                .map(|(r, n)| (Some(r.code()), *n))
                .collect()
        },
    ));
    // How long each message took from the receiver that accepted it to the sink.
    let latency = meter
        .f64_histogram("slim_node.sink.latency")
        .with_unit("s")
        .with_description(
            "From a receiver accepting a request (its message id's time) to a sink delivering it",
        )
        .build();
    for sink in &sinks {
        sink.stats.record_latency(LatencyRecorder {
            histogram: latency.clone(),
            attributes: Signal::ALL.map(|signal| {
                vec![
                    node.clone(),
                    KeyValue::new("sink", sink.name.clone()),
                    KeyValue::new("signal", signal.as_str()),
                ]
            }),
        });
    }
    NodeMetrics { _instruments: all }
}
