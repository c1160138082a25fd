//! How a sink kind declares itself: its name, argument, options with defaults and help, and
//! how it opens ([`SinkKind`]); and a parsed `--sink` value ([`SinkSpec`]). Every sink module
//! declares one `KIND`; the registry lists them.

use std::fmt;
use std::str::FromStr;

use crate::history::store::Stores;
use crate::pipeline::{QueueKind, QueueSettings, Sink, WhenFull};

/// What the code that starts a node hands a sink as it opens it: what the node opened once for
/// all its parts.
pub struct SinkContext<'a> {
    /// The node's stores (the store sink and the query API share them).
    pub stores: &'a Stores,
}

/// A memory queue's default bounds: bytes, messages (`COMMON` states them for `--help`).
pub const MEMORY_QUEUE: (usize, usize) = (64 << 20, 10_000);
/// A disk queue's default bounds: bytes, messages.
pub const DISK_QUEUE: (usize, usize) = (1 << 30, 1_000_000);

/// One option of a sink.
#[derive(Debug)]
pub struct OptionSpec {
    /// Its key.
    pub key: &'static str,
    /// What its value looks like.
    pub value: &'static str,
    /// Its default, as shown to users.
    pub default: &'static str,
    /// What it does.
    pub help: &'static str,
    /// Whether it may be given more than once.
    pub repeats: bool,
}

/// A kind of sink.
pub struct SinkKind {
    /// What `--sink` starts with.
    pub name: &'static str,
    /// Its argument after `:` (what it looks like) and whether it is required.
    pub arg: Option<(&'static str, bool)>,
    /// One line on what it does.
    pub summary: &'static str,
    /// Whether the node acknowledges a message only once this sink took it.
    pub durable: bool,
    /// Its default queue.
    pub queue: QueueKind,
    /// Its own options.
    pub options: &'static [OptionSpec],
    /// Opens it.
    pub open: fn(&SinkSpec, &SinkContext) -> anyhow::Result<Box<dyn Sink>>,
}

impl fmt::Debug for SinkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl PartialEq for SinkKind {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for SinkKind {}

/// Options every sink takes: its name and its queue.
pub static COMMON: &[OptionSpec] = &[
    OptionSpec {
        key: "name",
        value: "NAME",
        default: "the kind (KIND-N when several)",
        help: "the sink's name in /health and the log, and its queue directory DATA_DIR/sinks/NAME",
        repeats: false,
    },
    OptionSpec {
        key: "queue",
        value: "memory|disk",
        default: "disk for otlp, memory for the others",
        help: "where what waits for the sink is kept: `disk` survives kill -9 (a message is acknowledged once written and synced there)",
        repeats: false,
    },
    OptionSpec {
        key: "queue-max-bytes",
        value: "BYTES",
        default: "64 MiB in memory, 1 GiB on disk",
        help: "payload bytes the queue holds at most",
        repeats: false,
    },
    OptionSpec {
        key: "queue-max-messages",
        value: "N",
        default: "10000 in memory, 1000000 on disk",
        help: "messages the queue holds at most",
        repeats: false,
    },
    OptionSpec {
        key: "when-full",
        value: "block|drop_oldest",
        default: "block for durable sinks, drop_oldest for the others",
        help: "`block`: take no more, so the node stops acknowledging and publishers hold the data (receivers answer 503 once their outbox is full); `drop_oldest`: drop what waited longest, counted",
        repeats: false,
    },
];

/// A parsed `--sink` value. `Debug` prints what `Display` does: header values stay hidden.
#[derive(Clone, PartialEq, Eq)]
pub struct SinkSpec {
    /// Its kind.
    pub kind: &'static SinkKind,
    /// The argument after `:`.
    pub arg: Option<String>,
    /// `OPTION=VALUE` pairs, in the order given.
    pub options: Vec<(String, String)>,
}

impl SinkSpec {
    /// The last value of `key`, if given.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    pub fn options_of<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.options
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `key` parsed, or `default`; a bad value is an error naming the option.
    /// For an option whose default is a value (not prose), use [`SinkSpec::value`].
    pub fn parsed<T: FromStr>(&self, key: &str, default: T) -> anyhow::Result<T>
    where
        T::Err: fmt::Display,
    {
        match self.option(key) {
            None => Ok(default),
            Some(v) => self.parse(key, v),
        }
    }

    /// The value of `key` parsed, or else its declared default ([`OptionSpec::default`], the
    /// text `--help` shows) parsed: each default is written once.
    pub fn value<T: FromStr>(&self, key: &str) -> anyhow::Result<T>
    where
        T::Err: fmt::Display,
    {
        self.parse(key, self.text(key))
    }

    /// The text of `key`: as given, or its declared default.
    pub fn text(&self, key: &str) -> &str {
        self.option(key).unwrap_or_else(|| {
            COMMON
                .iter()
                .chain(self.kind.options)
                .find(|o| o.key == key)
                .map_or("", |o| o.default)
        })
    }

    fn parse<T: FromStr>(&self, key: &str, v: &str) -> anyhow::Result<T>
    where
        T::Err: fmt::Display,
    {
        v.parse().map_err(|e| {
            anyhow::anyhow!(
                "sink {}: option {key}={v:?} is not valid: {e}",
                self.kind.name
            )
        })
    }

    /// Whether the node waits for this sink before acknowledging.
    pub fn durable(&self) -> bool {
        self.kind.durable
    }

    /// Its queue's settings, from its options and the kind's defaults.
    pub fn queue_settings(&self) -> anyhow::Result<QueueSettings> {
        let kind = match self.option("queue") {
            None => self.kind.queue,
            Some("memory") => QueueKind::Memory,
            Some("disk") => QueueKind::Disk,
            Some(other) => anyhow::bail!(
                "sink {}: queue={other:?} is not valid: expected memory or disk",
                self.kind.name
            ),
        };
        let when_full = match self.option("when-full") {
            None if self.durable() => WhenFull::Block,
            None => WhenFull::DropOldest,
            Some("block") => WhenFull::Block,
            Some("drop_oldest") => WhenFull::DropOldest,
            Some(other) => anyhow::bail!(
                "sink {}: when-full={other:?} is not valid: expected block or drop_oldest",
                self.kind.name
            ),
        };
        let (bytes, messages) = match kind {
            QueueKind::Memory => MEMORY_QUEUE,
            QueueKind::Disk => DISK_QUEUE,
        };
        Ok(QueueSettings {
            kind,
            max_bytes: self.parsed("queue-max-bytes", bytes)?,
            max_messages: self.parsed("queue-max-messages", messages)?,
            when_full,
        })
    }
}

impl fmt::Display for SinkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values and a URL's user part and query hold credentials: never print them.
        let redact = crate::net::redact::urls;
        f.write_str(self.kind.name)?;
        if let Some(arg) = &self.arg {
            write!(f, ":{}", redact(arg))?;
        }
        for (k, v) in &self.options {
            if k == "header" {
                let name = v.split_once('=').map_or(v.as_str(), |(n, _)| n);
                write!(f, ";{k}={name}=…")?;
            } else {
                write!(f, ";{k}={}", redact(v))?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for SinkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SinkSpec({self})")
    }
}

/// `KIND[:ARG]` as users write it.
pub fn usage(kind: &SinkKind) -> String {
    match kind.arg {
        None => kind.name.to_string(),
        Some((arg, true)) => format!("{}:{arg}", kind.name),
        Some((arg, false)) => format!("{}[:{arg}]", kind.name),
    }
}
