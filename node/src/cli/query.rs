//! `slim-node query`: the query API over a bucket, for a node that writes nothing.

use clap::Args;

use super::*;
use crate::config::QuerySettings;
use crate::sink::SinkSpec;

/// `slim-node query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// What to serve: the writers' `store:DIR;location=s3://BUCKET/PREFIX` spec (with their
    /// endpoint= and region=). DIR is this node's own (its segment cache and cursor key),
    /// empty at first; nothing is written to the bucket and nothing is deleted from it.
    #[arg(
        long,
        env = "SLIM_NODE_SINK",
        hide_env_values = true,
        value_parser = crate::sink::registry::SpecParser,
        value_name = "SPEC"
    )]
    pub sink: SinkSpec,
    #[command(flatten)]
    pub query: QueryApiArgs,
    #[command(flatten)]
    pub tls: OtlpTlsArgs,
}

impl QueryArgs {
    /// The settings of `slim-node query`: a store with a location, and a query API.
    pub fn settings(&self, on_command_line: &[String]) -> anyhow::Result<QuerySettings> {
        if self.sink.kind != &crate::sink::store::KIND || self.sink.option("location").is_none() {
            anyhow::bail!(
                "slim-node query serves a bucket: give --sink 'store:DIR;location=s3://BUCKET/PREFIX' (the writers' spec; DIR is this node's own)"
            );
        }
        let Some(api) = self.query.settings(on_command_line) else {
            anyhow::bail!("slim-node query serves the query API: give --query-api HOST:PORT");
        };
        Ok(QuerySettings {
            sink: self.sink.clone(),
            api,
            tls: self.tls.files(),
        })
    }
}
