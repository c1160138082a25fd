//! The command line (clap only): one file of arguments per command, and the argument groups
//! several commands share, written once (`groups`). What the flags, the `SLIM_NODE_*`
//! variables and the config file say becomes the plain settings of `crate::config` in one
//! place per command (`NodeArgs::settings`, `UpArgs::settings`); `file` puts the config file
//! under the command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::defaults;

mod fetch;
mod file;
mod groups;
mod loadgen;
mod node;
mod query;
pub mod reference;
mod replay;
mod server;
mod slim_bench;
mod trust_list;
mod up;

pub use fetch::FetchArgs;
pub use file::{parse_from, ParseError, SettingsError, CONFIG_ENV};
pub use groups::*;
pub use loadgen::{LoadgenArgs, Protocol};
pub use node::{NodeArgs, Role, SecretArgs};
pub use query::QueryArgs;
pub use replay::ReplayArgs;
pub use server::{PeerArgs, ServerArgs, ServerTlsArgs, SlimServerArgs};
pub use slim_bench::SlimBenchArgs;
pub use trust_list::TrustListArgs;
pub use up::UpArgs;

/// Move OpenTelemetry data across organisations over an end-to-end encrypted SLIM mesh.
#[derive(Debug, Parser)]
#[command(name = "slim-node", version, propagate_version = true)]
pub struct Cli {
    /// Log filter (tracing EnvFilter syntax; RUST_LOG also works). Logs go to stderr.
    #[arg(long, global = true, env = "SLIM_NODE_LOG", default_value = defaults::LOG)]
    pub log: String,

    /// A TOML file with the command's settings, keyed by their long flag names
    /// (`otlp-http = "0.0.0.0:4318"`, `sink = ["otlp:http://collector:4318"]`); flags and
    /// SLIM_NODE_* variables override it.
    #[arg(long, global = true, env = "SLIM_NODE_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// What to run.
    #[command(subcommand)]
    pub command: Command,

    /// The command's arguments given as flags (not by variable, file or default), by id: a
    /// secret there shows in the process list.
    #[arg(skip)]
    pub on_command_line: Vec<String>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a SLIM data-plane server.
    Server(ServerArgs),
    /// Run a node: a moderator or participant on a channel, with an optional OTLP receiver.
    Node(Box<NodeArgs>),
    /// Run everything in one process: a SLIM server, a receiver (moderator) and a
    /// printing participant. The quickest way to try slim-node.
    Up(Box<UpArgs>),
    /// Send generated OTLP traces, metrics or logs to a receiver (any OTLP endpoint) and
    /// report throughput, answers and latency.
    Loadgen(LoadgenArgs),
    /// Measure what a SLIM server carries between two apps with no slim-node in the way:
    /// the ceiling for any node on it.
    SlimBench(SlimBenchArgs),
    /// Print what a node's store holds (its query API) as OTLP/JSON, one export request
    /// per line.
    Fetch(FetchArgs),
    /// Send what a node's store holds (its query API) again to an OTLP endpoint: all three
    /// signals, or one.
    Replay(ReplayArgs),
    /// Serve the query API over the segments every node sealed under a bucket prefix
    /// (`store:DIR;location=s3://…`), writing nothing: a read-only node, e.g. with an empty
    /// data directory after the writers' machines are gone.
    Query(QueryArgs),
    /// Print the members' public keys as the JWKS `node --trust` reads (`NAME=PEM` each), for
    /// members that prove who they are with keys of their own instead of a shared secret.
    TrustList(TrustListArgs),
}

fn parse_signal(s: &str) -> Result<otlp::Signal, String> {
    s.parse().map_err(|e: otlp::CodecError| e.to_string())
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration like 30s, 15m or 2h: {e}"))
}

fn parse_positive_duration(s: &str) -> Result<std::time::Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err(format!("{s:?} must be longer than zero")),
        d => Ok(d),
    }
}

fn parse_time(s: &str) -> Result<u64, String> {
    if let Ok(nanos) = s.parse::<u64>() {
        return Ok(nanos);
    }
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| {
            format!("{s:?} is neither RFC 3339 (2026-11-27T10:00:00Z) nor Unix nanoseconds: {e}")
        })?;
    u64::try_from(t.unix_timestamp_nanos()).map_err(|_| format!("{s:?} is before 1970"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use slim_roles::SlimName;
    use std::path::Path;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// `slim-node node` as a participant named a/b/c, then `extra`.
    pub(super) fn participant<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![
            "slim-node",
            "node",
            "--role",
            "participant",
            "--name",
            "a/b/c",
        ];
        args.extend_from_slice(extra);
        args
    }

    #[test]
    fn debug_of_the_command_line_shows_no_secret() {
        let cli = Cli::try_parse_from(participant(&[
            "--secret",
            "the-shared-secret-0123456789abcdef",
            "--query-api",
            "127.0.0.1:4320",
            "--cursor-key",
            "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00",
            "--sink",
            "otlp:https://user:hunter2@backend:4318/?api_key=query-secret;header=Authorization=Bearer header-secret",
            "--telemetry",
            "otlp:https://metrics:4318;header=Authorization=Bearer telemetry-secret",
        ]))
        .unwrap();
        let shown = format!("{cli:?}");
        for secret in [
            "the-shared-secret",
            "c0ffee00",
            "hunter2",
            "query-secret",
            "header-secret",
            "telemetry-secret",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("backend:4318"), "{shown}");
    }

    #[test]
    fn malformed_name_is_a_usage_error() {
        let err = Cli::try_parse_from([
            "slim-node",
            "node",
            "--role",
            "participant",
            "--name",
            "just-one",
            "--secret",
            "x",
        ])
        .unwrap_err();
        assert!(err.to_string().contains("exactly three parts"), "{err}");
    }

    #[test]
    fn a_secret_is_required() {
        let err = Cli::try_parse_from(participant(&[])).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
    }

    fn queue(data_dir: Option<&str>) -> QueueArgs {
        let mut args = participant(&["--secret", "s"]);
        if let Some(dir) = data_dir {
            args.extend(["--data-dir", dir]);
        }
        let Command::Node(node) = Cli::try_parse_from(args).unwrap().command else {
            panic!()
        };
        node.queue
    }

    #[test]
    fn a_data_dir_given_is_the_nodes_own() {
        let name: SlimName = "acme/otel/p1".parse().unwrap();
        let dir = queue(Some("/var/lib/x")).state_dir(&name, false).unwrap();
        assert_eq!(dir, PathBuf::from("/var/lib/x"));
    }

    #[test]
    fn a_spool_without_a_directory_lives_in_the_data_dir() {
        let Command::Node(node) = Cli::try_parse_from(participant(&["--secret", "s", "--spool"]))
            .unwrap()
            .command
        else {
            panic!()
        };
        let spool = node.queue.spool_config(Path::new("/var/lib/x")).unwrap();
        assert_eq!(spool.dir, PathBuf::from("/var/lib/x/spool"));
        let given = queue(None);
        assert!(
            given.spool_config(Path::new("/v")).is_none(),
            "no spool unless asked"
        );
    }

    #[test]
    fn nodes_sharing_a_data_dir_get_a_directory_per_name() {
        let name: SlimName = "acme/otel/p1".parse().unwrap();
        let dir = queue(Some("/var/lib/x")).state_dir(&name, true).unwrap();
        assert_eq!(dir, PathBuf::from("/var/lib/x/acme/otel/p1"));
    }

    #[test]
    fn invites_repeat() {
        let cli = Cli::try_parse_from([
            "slim-node",
            "node",
            "--role",
            "moderator",
            "--name",
            "a/b/m",
            "--secret",
            "s",
            "--channel",
            "a/b/ch",
            "--invite",
            "a/b/p1",
            "--invite",
            "a/b/p2",
        ])
        .unwrap();
        let Command::Node(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.invite.len(), 2);
        assert_eq!(args.sinks.sink.len(), 1);
        assert_eq!(args.sinks.sink[0].kind.name, "stdout");
    }

    /// Every argument with a default takes it from `config::defaults`, and clap prints it
    /// (`[default: …]`) from there; help prose stating it again could go stale.
    #[test]
    fn no_help_text_repeats_a_default_in_prose() {
        fn walk(cmd: &clap::Command, path: &str, bad: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                if arg.get_default_values().is_empty() {
                    continue;
                }
                // The sinks' options have defaults of their own (the registry checks those).
                let registry = crate::sink::registry::help();
                let help = [arg.get_help(), arg.get_long_help()]
                    .into_iter()
                    .flatten()
                    .map(|h| h.to_string().replace(&registry, "").to_lowercase())
                    .collect::<Vec<_>>()
                    .join(" ");
                if help.contains("default") {
                    bad.push(format!("{path} --{}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), bad);
            }
        }
        let mut bad = Vec::new();
        walk(&Cli::command(), "slim-node", &mut bad);
        assert!(bad.is_empty(), "help prose states a default: {bad:?}");
    }

    fn query_settings(args: &[&str]) -> anyhow::Result<crate::config::QuerySettings> {
        let mut all = vec!["slim-node", "query"];
        all.extend_from_slice(args);
        let Command::Query(query) = Cli::try_parse_from(all).unwrap().command else {
            panic!("not the query command");
        };
        query.settings(&[])
    }

    #[test]
    fn the_query_node_needs_a_store_with_a_location_and_an_address() {
        let located = "store:/tmp/q;location=s3://telemetry/history";
        let ok = query_settings(&["--sink", located, "--query-api", "127.0.0.1:4322"]).unwrap();
        assert_eq!(ok.api.listen, "127.0.0.1:4322");
        for (args, says) in [
            (
                &["--sink", "store:/tmp/q", "--query-api", "127.0.0.1:4322"][..],
                "location=s3://",
            ),
            (
                &[
                    "--sink",
                    "jsonl:/tmp/q.jsonl",
                    "--query-api",
                    "127.0.0.1:4322",
                ][..],
                "location=s3://",
            ),
            (&["--sink", located][..], "--query-api HOST:PORT"),
        ] {
            let err = query_settings(args).unwrap_err().to_string();
            assert!(err.contains(says), "{args:?}: {err}");
        }
    }
}
