//! End-to-end tests: the slim-node binary against a real SLIM server, over loopback.
//! Each test starts its own server and nodes on free ports.

mod certs;
mod harness;

mod backend;

mod archive;
mod bench;
mod cli_errors;
mod conformance;
mod deploy;
mod diskfull;
mod faults;
mod files;
mod forward;
mod grpc;
mod history;
mod hostile;
mod live;
mod logs;
mod members;
mod netns;
mod origin;
mod outages;
mod peers;
mod py_peer;
mod python_sdk;
mod rogue;
mod scenarios;
mod security;
mod sites;
mod slim_otel;
mod telemetry;
mod up;
