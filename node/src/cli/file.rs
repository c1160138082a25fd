//! One settings path: the command line, the `SLIM_NODE_*` variables and the config file
//! (`--config PATH` or `SLIM_NODE_CONFIG`) resolve into one [`Cli`] value, in that order of
//! precedence. The config file is TOML; its keys are the long flag names of the command being
//! run (`otlp-http = "0.0.0.0:4318"`, `sink = ["otlp:http://collector:4318"]`,
//! `no-mls = true`), so it can say everything the flags say. Its values become the defaults
//! clap falls back to, which keeps flags and variables winning over it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{CommandFactory, FromArgMatches};

use super::Cli;

/// The variable naming a config file.
pub const CONFIG_ENV: &str = "SLIM_NODE_CONFIG";

/// A config file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file cannot be read.
    #[error("cannot read the config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("the config file {path} is not valid TOML: {message}")]
    Toml {
        /// The file.
        path: PathBuf,
        /// The parser's message, with the line.
        message: String,
    },
    /// A key that the command does not have.
    #[error("the config file {path} sets {key:?}, which `slim-node {command}` does not take (it takes: {known})")]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// The command run.
        command: String,
        /// Its settings.
        known: String,
    },
    /// A value of a type a flag cannot take.
    #[error("the config file {path}: {key} must be a string, number, boolean or a list of those")]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
    },
}

/// Parses the command line `args` with the config file it names (or [`CONFIG_ENV`] names)
/// underneath. Usage errors are clap's (print and exit with them).
pub fn parse_from(args: Vec<OsString>, env_config: Option<OsString>) -> Result<Cli, ParseError> {
    let mut command = Cli::command();
    let config = config_path(&args).or_else(|| env_config.map(PathBuf::from));
    if let (Some(path), Some(sub)) = (config, subcommand(&command, &args)) {
        let table = read(&path)?;
        command = command.mut_subcommand(&sub, |mut sc| {
            for (key, value) in &table {
                let id = sc
                    .get_arguments()
                    .find(|a| a.get_long() == Some(key.as_str()))
                    .map(|a| a.get_id().clone());
                if let Some(id) = id {
                    // A value from the file satisfies what the command requires.
                    let groups: Vec<clap::Id> = sc
                        .get_groups()
                        .filter(|g| g.get_args().any(|a| *a == id))
                        .map(|g| g.get_id().clone())
                        .collect();
                    for group in groups {
                        sc = sc.mut_group(group, |g| g.required(false));
                    }
                    let values = value.clone();
                    // Not shown by --help: a file's values may be credentials.
                    sc = sc.mut_arg(id, move |a| {
                        let takes_values = a.get_action().takes_values();
                        let a = a.default_values(values).required(false);
                        // (a switch shows no default to hide)
                        a.hide_default_value(takes_values)
                    });
                }
            }
            sc
        });
        let sc = command
            .find_subcommand(&sub)
            .expect("the subcommand was found above");
        for (key, _) in &table {
            if !sc
                .get_arguments()
                .any(|a| a.get_long() == Some(key.as_str()))
            {
                let known: Vec<&str> = sc.get_arguments().filter_map(|a| a.get_long()).collect();
                return Err(ParseError::Settings(SettingsError::UnknownKey {
                    path: path.clone(),
                    key: key.clone(),
                    command: sub.clone(),
                    known: known.join(", "),
                }));
            }
        }
    }
    let matches = command.try_get_matches_from(args)?;
    let mut cli = Cli::from_arg_matches(&matches)?;
    if let Some((_, sub)) = matches.subcommand() {
        cli.on_command_line = sub
            .ids()
            .filter(|id| {
                sub.value_source(id.as_str()) == Some(clap::parser::ValueSource::CommandLine)
            })
            .map(|id| id.to_string())
            .collect();
    }
    Ok(cli)
}

/// Why the settings could not be parsed.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The command line (or a value from the file) is wrong; clap says how.
    #[error(transparent)]
    Usage(#[from] clap::Error),
    /// The config file is wrong.
    #[error(transparent)]
    Settings(#[from] SettingsError),
}

/// `--config PATH` or `--config=PATH`, wherever it stands.
fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut iter = args.iter().skip(1);
    while let Some(arg) = iter.next() {
        let text = arg.to_string_lossy();
        if text == "--" {
            return None;
        }
        if text == "--config" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(path) = text.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    None
}

/// The subcommand being run: the first argument that names one.
fn subcommand(command: &clap::Command, args: &[OsString]) -> Option<String> {
    args.iter().skip(1).find_map(|a| {
        let a = a.to_string_lossy();
        command
            .get_subcommands()
            .find(|sc| sc.get_name() == a)
            .map(|sc| sc.get_name().to_string())
    })
}

/// The file's keys with their values as flag values.
fn read(path: &Path) -> Result<Vec<(String, Vec<String>)>, SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| SettingsError::Toml {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let scalar = |key: &str, v: &toml::Value| match v {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        _ => Err(SettingsError::BadValue {
            path: path.to_path_buf(),
            key: key.to_string(),
        }),
    };
    let mut entries = Vec::new();
    for (key, value) in &table {
        if let (Some(telemetry), "telemetry") = (value.as_table(), key.as_str()) {
            entries.extend(telemetry_table(path, telemetry)?);
            continue;
        }
        let values = match value {
            toml::Value::Array(items) => items
                .iter()
                .map(|v| scalar(key, v))
                .collect::<Result<Vec<_>, _>>()?,
            other => vec![scalar(key, other)?],
        };
        entries.push((key.clone(), values));
    }
    Ok(entries)
}

/// The `[telemetry]` table as flag values: `push` (`--telemetry`), `interval`
/// (`--telemetry-interval`) and each `[[telemetry.view]]` (`--telemetry-view`, as JSON).
fn telemetry_table(
    path: &Path,
    table: &toml::Table,
) -> Result<Vec<(String, Vec<String>)>, SettingsError> {
    let bad = |key: &str| SettingsError::BadValue {
        path: path.to_path_buf(),
        key: format!("telemetry.{key}"),
    };
    let mut entries = Vec::new();
    for (key, value) in table {
        let (flag, values) = match (key.as_str(), value) {
            ("view", toml::Value::Array(views)) => (
                "telemetry-view",
                views
                    .iter()
                    .map(|v| serde_json::to_string(v).map_err(|_| bad(key)))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            ("push", toml::Value::Array(items)) => (
                "telemetry",
                items
                    .iter()
                    .map(|v| v.as_str().map(str::to_string).ok_or_else(|| bad(key)))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            ("interval", toml::Value::String(s)) => ("telemetry-interval", vec![s.clone()]),
            (other, _) => {
                return Err(SettingsError::UnknownKey {
                    path: path.to_path_buf(),
                    key: format!("telemetry.{other}"),
                    command: "node".into(),
                    known: "telemetry.view, telemetry.push, telemetry.interval".into(),
                })
            }
        };
        entries.push((flag.to_string(), values));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Command;

    fn parse(args: &[&str], file: Option<&str>) -> Result<Cli, ParseError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slim-node.toml");
        let mut argv: Vec<OsString> = args.iter().map(OsString::from).collect();
        if let Some(text) = file {
            std::fs::write(&path, text).unwrap();
            argv.extend([OsString::from("--config"), path.clone().into()]);
        }
        parse_from(argv, None)
    }

    fn node(cli: Cli) -> crate::cli::NodeArgs {
        match cli.command {
            Command::Node(args) => *args,
            _ => panic!("not node"),
        }
    }

    /// A participant's command line, with the config file added by [`parse`].
    fn participant_args() -> Vec<&'static str> {
        crate::cli::tests::participant(&["--secret-file", "/s"])
    }

    #[test]
    fn the_telemetry_table_holds_the_views_the_destinations_and_the_interval() {
        let args = node(
            parse(
                &participant_args(),
                Some(
                    r#"
[telemetry]
push = ["mesh"]
interval = "5s"

[[telemetry.view]]
instrument = "http.server.request.duration"
attributes = ["http.route", "http.response.status_code"]
buckets = [0.001, 0.01, 0.1]

[[telemetry.view]]
instrument = "process.*"
drop = true
"#,
                ),
            )
            .unwrap(),
        );
        let destinations: Vec<&str> = args.telemetry.iter().map(|d| d.expose()).collect();
        assert_eq!(destinations, ["mesh"]);
        assert_eq!(args.telemetry_interval, std::time::Duration::from_secs(5));
        assert_eq!(args.telemetry_view.len(), 2);
        assert_eq!(args.telemetry_view[0].buckets, Some(vec![0.001, 0.01, 0.1]));
        assert!(args.telemetry_view[1].drop);
    }

    #[test]
    fn an_unknown_key_in_the_telemetry_table_is_named() {
        let err = parse(&participant_args(), Some("[telemetry]\ncolour = \"red\"\n")).unwrap_err();
        assert!(err.to_string().contains("telemetry.colour"), "{err}");
    }

    const FILE: &str = r#"
role = "participant"
name = "acme/otel/gw"
secret-file = "/etc/slim-node/secret"
sink = ["stdout", "otlp:http://collector:4318;compression=gzip"]
data-dir = "/var/lib/slim-node"
queue-max-messages = 500
no-mls = true
"#;

    #[test]
    fn the_config_file_can_say_what_the_flags_say() {
        let args = node(parse(&["slim-node", "node"], Some(FILE)).unwrap());
        assert_eq!(args.name.to_string(), "acme/otel/gw");
        assert_eq!(args.sinks.sink.len(), 2);
        assert_eq!(args.sinks.sink[1].option("compression"), Some("gzip"));
        assert_eq!(args.queue.queue_max_messages, 500);
        assert!(args.session.no_mls);
        assert_eq!(
            args.queue.data_dir.as_deref(),
            Some(Path::new("/var/lib/slim-node"))
        );
    }

    #[test]
    fn flags_win_over_the_config_file() {
        let args = node(
            parse(
                &[
                    "slim-node",
                    "node",
                    "--name",
                    "acme/otel/other",
                    "--sink",
                    "jsonl:/x",
                ],
                Some(FILE),
            )
            .unwrap(),
        );
        assert_eq!(args.name.to_string(), "acme/otel/other");
        assert_eq!(args.sinks.sink.len(), 1);
        assert_eq!(args.sinks.sink[0].kind.name, "jsonl");
    }

    #[test]
    fn the_example_config_forwards_to_a_local_collector() {
        let example = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/forward-to-collector.toml"
        );
        let argv = ["slim-node", "node", "--config", example]
            .map(OsString::from)
            .to_vec();
        let args = node(parse_from(argv, None).unwrap());
        assert_eq!(args.sinks.sink[0].kind.name, "otlp");
        assert_eq!(
            args.sinks.sink[0].arg.as_deref(),
            Some("http://127.0.0.1:4318")
        );
        assert_eq!(args.receiver.health.as_deref(), Some("127.0.0.1:8080"));
    }

    #[test]
    fn the_variable_names_a_config_file_too() {
        let example = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/forward-to-collector.toml"
        );
        let argv = ["slim-node", "node"].map(OsString::from).to_vec();
        let args = node(parse_from(argv, Some(example.into())).unwrap());
        assert_eq!(args.sinks.sink[0].kind.name, "otlp");
    }

    #[test]
    fn an_unknown_key_is_named() {
        let err = parse(&["slim-node", "node"], Some("nmae = \"a/b/c\"\n"))
            .err()
            .unwrap();
        assert!(err.to_string().contains("\"nmae\""), "{err}");
    }

    #[test]
    fn bad_toml_says_where() {
        let err = parse(&["slim-node", "node"], Some("role = \n"))
            .err()
            .unwrap();
        assert!(err.to_string().contains("not valid TOML"), "{err}");
    }

    #[test]
    fn a_bad_value_from_the_file_is_a_usage_error() {
        let err = parse(
            &["slim-node", "node"],
            Some("role = \"boss\"\nname = \"a/b/c\"\nsecret = \"x\"\n"),
        )
        .err()
        .unwrap();
        assert!(matches!(err, ParseError::Usage(_)), "{err}");
    }
}
