//! The `slim-node` binary.

use std::io::IsTerminal;
use std::process::ExitCode;

use slim_node::cli::{self, Command};
use slim_node::cmd;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

/// glibc's malloc was ~15 % of a node's CPU with small requests (BENCHMARKS.md, profile note 10).
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[global_allocator]
static ALLOCATOR: jemallocator::Jemalloc = jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = match cli::parse_from(
        std::env::args_os().collect(),
        std::env::var_os(cli::CONFIG_ENV),
    ) {
        Ok(cli) => cli,
        Err(cli::ParseError::Usage(err)) => err.exit(),
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    init_logging(&cli.log);
    // Our subscriber is installed first, so SLIM logs through it too.
    slim_roles::runtime::init();
    let flags = cli.on_command_line;
    let result = slim_roles::runtime::handle().block_on(async move {
        match cli.command {
            Command::Server(args) => cmd::server::run(args).await,
            Command::Node(args) => cmd::node::run(args.settings(&flags)?).await,
            Command::Up(args) => cmd::up::run(args.settings(&flags)?).await,
            Command::Loadgen(args) => cmd::loadgen::run(args).await,
            Command::SlimBench(args) => cmd::slim_bench::run(args).await,
            Command::Fetch(args) => cmd::fetch::run(args).await,
            Command::Replay(args) => cmd::replay::run(args).await,
            Command::Query(args) => cmd::query::run(args, &flags).await,
            Command::TrustList(args) => cmd::trust_list::run(args),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(level: &str) {
    // SLIM's crates log heavily at info; keep them at warn unless asked for. Directives for
    // our own crates are more specific, so they win over `slim=warn`.
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| {
            EnvFilter::try_new(format!(
                "{level},slim=warn,slim_node={level},slim_roles={level}"
            ))
            .ok()
        })
        .unwrap_or_else(|| EnvFilter::new("info"));
    // SLIM logs each message it refuses for its sender's identity; those are counted and logged
    // once per sender instead (a rogue member could flood the log otherwise).
    let filter = filter.add_directive(
        format!("{}=off", slim_roles::SLIM_REFUSAL_TARGET)
            .parse()
            .expect("a valid directive"),
    );
    let refusals = Targets::new().with_target(slim_roles::SLIM_REFUSAL_TARGET, Level::WARN);
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(slim_node::log::Hygiene::new(std::io::stderr()))
                .with_ansi(std::io::stderr().is_terminal())
                .with_target(true)
                .with_filter(filter),
        )
        .with(slim_roles::SlimRefusals.with_filter(refusals))
        .init();
}
