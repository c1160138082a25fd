//! The command-line reference (docs/cli.md), rendered from the clap definition: every command,
//! its flags, their `SLIM_NODE_*` variables, defaults and help. A test keeps the page equal to
//! it. (Written here rather than with `clap-markdown`, which leaves out the variables.)

use std::fmt::Write;

use clap::{Arg, Command};

/// The reference page of `cli`, as Markdown.
pub fn markdown(cli: &Command) -> String {
    let mut cli = cli.clone();
    cli.build();
    let cli = &cli;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Command-line reference\n\n\
         Generated from `slim-node`'s argument definitions (`task docs` writes it; a test checks it\n\
         is current). Every flag can also be set by the variable shown and, for `node` and `up`, in\n\
         the config file under its long name ([config](config.md)). Flags win over variables, which\n\
         win over the file.\n"
    );
    global(&mut out, cli);
    for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
        command(&mut out, cli.get_name(), sub);
    }
    out
}

fn global(out: &mut String, cli: &Command) {
    let args: Vec<&Arg> = cli
        .get_arguments()
        .filter(|a| a.is_global_set() && !a.is_hide_set())
        .collect();
    let _ = writeln!(out, "## Options of every command\n");
    table(out, &args);
}

fn command(out: &mut String, parent: &str, cmd: &Command) {
    let name = format!("{parent} {}", cmd.get_name());
    let _ = writeln!(out, "## `{name}`\n");
    if let Some(about) = cmd.get_long_about().or(cmd.get_about()) {
        let _ = writeln!(out, "{}\n", about.to_string().trim());
    }
    let args: Vec<&Arg> = cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !a.is_global_set())
        .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
        .collect();
    if !args.is_empty() {
        table(out, &args);
    }
}

fn table(out: &mut String, args: &[&Arg]) {
    let _ = writeln!(out, "| flag | variable | default | |\n|---|---|---|---|");
    for arg in args {
        let flag = match (arg.get_long(), arg.get_value_names()) {
            (Some(long), Some(names)) if arg.get_num_args().is_none_or(|n| n.takes_values()) => {
                format!("`--{long} {}`", names.join(" "))
            }
            (Some(long), _) => format!("`--{long}`"),
            (None, _) => format!("`{}`", arg.get_id()),
        };
        let env = arg
            .get_env()
            .map(|e| format!("`{}`", e.to_string_lossy()))
            .unwrap_or_default();
        let mut default = arg
            .get_default_values()
            .iter()
            .map(|v| format!("`{}`", v.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(", ");
        let choices: Vec<String> = arg
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| format!("`{}`", v.get_name()))
            .collect();
        if !choices.is_empty()
            && choices.len() < 8
            && arg.get_num_args().is_none_or(|n| n.takes_values())
        {
            default = format!("{default} (one of {})", choices.join(", "))
                .trim()
                .to_string();
        }
        let help = arg
            .get_long_help()
            .or(arg.get_help())
            .map(|h| cell(&h.to_string()))
            .unwrap_or_default();
        let _ = writeln!(out, "| {flag} | {env} | {default} | {help} |");
    }
    let _ = writeln!(out);
}

/// Text as one table cell: lines joined, pipes escaped.
fn cell(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("<br>")
        .replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;
    use crate::cli::Cli;

    const PAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/cli.md");

    #[test]
    fn the_cli_reference_page_is_what_the_definitions_say() {
        let page = std::fs::read_to_string(PAGE).unwrap_or_default();
        assert!(
            page == markdown(&Cli::command()),
            "docs/cli.md is out of date: run `task docs` (cargo test -p slim-node --lib write_the_cli_reference_page -- --ignored)"
        );
    }

    /// Writes docs/cli.md; run by `task docs`.
    #[test]
    #[ignore]
    fn write_the_cli_reference_page() {
        std::fs::write(PAGE, markdown(&Cli::command())).expect("write docs/cli.md");
    }
}
