//! Every sink kind, declared once: its name, argument, whether it is durable, its options with
//! defaults and help, and how it opens. The `--sink` parser, its `--help` text and docs/sinks.md's
//! sinks table all come from [`KINDS`] and [`COMMON`].
//!
//! A `--sink` value is `KIND[:ARG][;OPTION=VALUE]…`, e.g.
//! `otlp:http://collector:4318;protocol=grpc;compression=gzip;header=Authorization=Bearer x`.

use std::str::FromStr;
use std::sync::Arc;

use super::{bench, files, jsonl, otlp, stdout, store, ws};

use super::kind::{usage, OptionSpec, SinkContext, SinkKind, SinkSpec, COMMON};
use crate::pipeline::{Queue, Sink, SinkHandle, SinkStats};

/// Every sink kind.
pub static KINDS: &[&SinkKind] = &[
    &stdout::KIND,
    &jsonl::KIND,
    &otlp::KIND,
    &files::KIND,
    &ws::KIND,
    &store::KIND,
    &bench::KIND,
];

/// Parses `--sink` values for clap. Its error says what is wrong without the value, which may
/// hold credentials (clap's own error would echo it whole).
#[derive(Debug, Clone, Copy)]
pub struct SpecParser;

impl clap::builder::TypedValueParser for SpecParser {
    type Value = SinkSpec;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<SinkSpec, clap::Error> {
        let refused = |why: String| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid --sink: {why}\n"),
            )
            .with_cmd(cmd)
        };
        value
            .to_str()
            .ok_or_else(|| refused("not UTF-8".to_string()))?
            .parse()
            .map_err(refused)
    }
}

impl FromStr for SinkSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split(';');
        let head = parts.next().unwrap_or_default();
        let (name, arg) = match head.split_once(':') {
            Some((name, arg)) => (name, Some(arg)),
            None => (head, None),
        };
        let kind = KINDS
            .iter()
            .copied()
            .find(|k| k.name == name)
            .ok_or_else(|| {
                format!(
                    "unknown sink {name:?}: expected one of {}",
                    KINDS
                        .iter()
                        .map(|k| usage(k))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
        let arg = match (kind.arg, arg) {
            (None, Some(_)) => return Err(format!("sink {name} takes no argument: `{name}`")),
            (Some((what, true)), None | Some("")) => {
                return Err(format!("sink {name} needs its {what}: `{}`", usage(kind)))
            }
            (_, Some("")) | (_, None) => None,
            (_, Some(arg)) => Some(arg.to_string()),
        };
        let mut options = Vec::new();
        for part in parts.filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                // The part itself is not shown: it may be a credential missing its key.
                .ok_or_else(|| format!("sink {name}: an option is not KEY=VALUE"))?;
            let spec = COMMON
                .iter()
                .chain(kind.options)
                .find(|o| o.key == key)
                .ok_or_else(|| {
                    format!(
                        "sink {name} has no option {key:?}; it takes {}",
                        COMMON
                            .iter()
                            .chain(kind.options)
                            .map(|o| o.key)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?;
            if !spec.repeats && options.iter().any(|(k, _): &(String, String)| k == key) {
                return Err(format!("sink {name}: option {key} is given twice"));
            }
            options.push((key.to_string(), value.to_string()));
        }
        let spec = SinkSpec { kind, arg, options };
        spec.queue_settings().map_err(|e| e.to_string())?;
        Ok(spec)
    }
}

/// The sinks' names: `name=` when given, else the kind, numbered when a kind repeats.
pub fn names(specs: &[SinkSpec]) -> Vec<String> {
    let unnamed = |kind: &SinkKind| {
        specs
            .iter()
            .filter(|s| *s.kind == *kind && s.option("name").is_none())
            .count()
    };
    let mut seen = std::collections::HashMap::<&str, usize>::new();
    specs
        .iter()
        .map(|spec| match spec.option("name") {
            Some(name) => name.to_string(),
            None if unnamed(spec.kind) > 1 => {
                let n = seen.entry(spec.kind.name).or_default();
                *n += 1;
                format!("{}-{n}", spec.kind.name)
            }
            None => spec.kind.name.to_string(),
        })
        .collect()
}

/// The `--sink` help text.
pub fn help() -> String {
    let mut text = String::from(
        "Where to put what others publish: KIND[:ARG][;OPTION=VALUE]…; repeat for several.\n",
    );
    for kind in KINDS {
        text.push_str(&format!(
            "  {:<40} {}{}\n",
            usage(kind),
            kind.summary,
            if kind.durable { " (durable)" } else { "" }
        ));
        for o in kind.options {
            text.push_str(&option_help(o));
        }
    }
    text.push_str("Options of every sink:\n");
    for o in COMMON {
        text.push_str(&option_help(o));
    }
    text.push_str(
        "A durable sink holds acknowledgements back until it took a message (written to its disk queue, or delivered).",
    );
    text
}

fn option_help(o: &OptionSpec) -> String {
    format!(
        "    ;{:<36} {} [default: {}]\n",
        format!("{}={}", o.key, o.value),
        o.help,
        o.default
    )
}

/// The sinks table of docs/sinks.md, generated from the registry (its test checks the page).
#[cfg(test)]
fn markdown_table() -> String {
    let row = |o: &OptionSpec| {
        format!(
            "| &nbsp;&nbsp;`{}={}` | {} | {} |\n",
            o.key,
            o.value.replace('|', "\\|"),
            o.default,
            o.help.replace('|', "\\|")
        )
    };
    let mut text = String::from("| sink / option | default | |\n|---|---|---|\n");
    for kind in KINDS {
        text.push_str(&format!(
            "| `{}` | | {}{} |\n",
            usage(kind),
            kind.summary,
            if kind.durable { " **Durable.**" } else { "" }
        ));
        text.extend(kind.options.iter().map(row));
    }
    text.push_str("| *every sink* | | |\n");
    text.extend(COMMON.iter().map(row));
    text
}

/// Opens the sinks of `specs` for a node whose state lives in `data_dir`.
pub fn open_all(
    specs: &[SinkSpec],
    data_dir: &std::path::Path,
    context: &SinkContext,
) -> anyhow::Result<Vec<(SinkHandle, Box<dyn Sink>)>> {
    let names = names(specs);
    specs
        .iter()
        .zip(names)
        .map(|(spec, name)| {
            let settings = spec.queue_settings()?;
            let dir = data_dir.join("sinks").join(&name);
            let queue = Queue::open(settings, &dir)?;
            let sink = (spec.kind.open)(spec, context)
                .map_err(|e| anyhow::anyhow!("cannot open sink {spec}: {e:#}"))?;
            let handle = SinkHandle {
                name,
                kind: spec.kind.name,
                durable: spec.durable(),
                queue: Arc::new(queue),
                stats: Arc::new(SinkStats::default()),
            };
            Ok((handle, sink))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::QueueKind;
    use crate::pipeline::WhenFull;

    fn parse(s: &str) -> Result<SinkSpec, String> {
        s.parse()
    }

    #[test]
    fn the_sinks_users_had_keep_their_syntax() {
        assert_eq!(parse("stdout").unwrap().kind.name, "stdout");
        let jsonl = parse("jsonl:/tmp/a b.jsonl").unwrap();
        assert_eq!(jsonl.arg.as_deref(), Some("/tmp/a b.jsonl"));
        assert!(parse("jsonl:").is_err());
        assert_eq!(parse("bench").unwrap().arg, None);
        assert_eq!(
            parse("bench:/tmp/b.json").unwrap().arg.as_deref(),
            Some("/tmp/b.json")
        );
    }

    #[test]
    fn options_follow_the_argument() {
        let s = parse("otlp:http://c:4318;protocol=grpc;compression=gzip;header=Authorization=Bearer x;header=X-A=1")
            .unwrap();
        assert_eq!(s.arg.as_deref(), Some("http://c:4318"));
        assert_eq!(s.option("protocol"), Some("grpc"));
        assert_eq!(
            s.options_of("header").collect::<Vec<_>>(),
            ["Authorization=Bearer x", "X-A=1"]
        );
    }

    #[test]
    fn mistakes_are_named() {
        assert!(parse("kafka:x").unwrap_err().contains("jsonl:PATH"));
        assert!(parse("stdout:x").unwrap_err().contains("takes no argument"));
        assert!(parse("stdout;color=red")
            .unwrap_err()
            .contains("no option \"color\""));
        assert!(parse("stdout;queue").unwrap_err().contains("KEY=VALUE"));
        assert!(parse("stdout;queue=tape")
            .unwrap_err()
            .contains("memory or disk"));
        assert!(parse("stdout;name=a;name=b").unwrap_err().contains("twice"));
        assert!(parse("stdout;queue-max-bytes=lots")
            .unwrap_err()
            .contains("queue-max-bytes"));
    }

    #[test]
    fn durable_sinks_block_and_live_ones_drop_the_oldest_by_default() {
        let otlp = parse("otlp:http://c:4318")
            .unwrap()
            .queue_settings()
            .unwrap();
        assert_eq!(
            (otlp.kind, otlp.when_full),
            (QueueKind::Disk, WhenFull::Block)
        );
        let stdout = parse("stdout").unwrap().queue_settings().unwrap();
        assert_eq!(
            (stdout.kind, stdout.when_full),
            (QueueKind::Memory, WhenFull::DropOldest)
        );
        let jsonl = parse("jsonl:x;queue=disk;when-full=drop_oldest")
            .unwrap()
            .queue_settings()
            .unwrap();
        assert_eq!(
            (jsonl.kind, jsonl.when_full),
            (QueueKind::Disk, WhenFull::DropOldest)
        );
    }

    #[test]
    fn sinks_are_named_by_kind_and_numbered_when_a_kind_repeats() {
        let specs: Vec<SinkSpec> = ["stdout", "jsonl:a", "jsonl:b", "otlp:http://x:1;name=eu"]
            .iter()
            .map(|s| parse(s).unwrap())
            .collect();
        assert_eq!(names(&specs), ["stdout", "jsonl-1", "jsonl-2", "eu"]);
    }

    #[test]
    fn header_values_are_never_printed() {
        let s = parse("otlp:http://c:4318;header=Authorization=Bearer secret-token").unwrap();
        assert!(!s.to_string().contains("secret-token"), "{s}");
        assert!(!format!("{s:?}").contains("secret-token"), "{s:?}");
    }

    #[test]
    fn the_sinks_page_lists_every_sink_and_option_as_the_registry_does() {
        let page = include_str!("../../../docs/sinks.md");
        assert!(
            page.contains(&markdown_table()),
            "docs/sinks.md's table differs from the registry; put this there:\n{}",
            markdown_table()
        );
    }

    #[test]
    fn an_option_left_out_takes_the_default_its_help_shows() {
        let otlp = parse("otlp:http://c:4318").unwrap();
        assert_eq!(otlp.value::<usize>("batch-max-requests").unwrap(), 512);
        assert_eq!(otlp.value::<f64>("retry-max-delay").unwrap(), 30.0);
        let files = parse("files:/tmp/x").unwrap();
        assert_eq!(files.value::<u64>("max-lines").unwrap(), 1000);
        assert_eq!(files.text("max-files"), "unlimited");
        let given = parse("files:/tmp/x;max-lines=7").unwrap();
        assert_eq!(given.value::<u64>("max-lines").unwrap(), 7);
    }

    #[test]
    fn every_default_that_is_a_value_parses_as_one() {
        for kind in KINDS {
            for o in kind.options {
                let d = o.default;
                if d.starts_with(|c: char| c.is_ascii_digit()) {
                    assert!(
                        d.parse::<f64>().is_ok() || humantime::parse_duration(d).is_ok(),
                        "sink {} option {}: default {d:?} is neither a number nor a duration",
                        kind.name,
                        o.key
                    );
                }
            }
        }
    }

    #[test]
    fn the_queue_bounds_help_states_are_the_ones_used() {
        use super::super::kind::{DISK_QUEUE, MEMORY_QUEUE};
        let default = |key: &str| COMMON.iter().find(|o| o.key == key).unwrap().default;
        assert_eq!(
            default("queue-max-bytes"),
            format!(
                "{} MiB in memory, {} GiB on disk",
                MEMORY_QUEUE.0 >> 20,
                DISK_QUEUE.0 >> 30
            )
        );
        assert_eq!(
            default("queue-max-messages"),
            format!("{} in memory, {} on disk", MEMORY_QUEUE.1, DISK_QUEUE.1)
        );
    }
}
