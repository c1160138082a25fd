//! End-to-end tests: the slim-node binary against a real SLIM server, over loopback.
//! Each test starts its own server and nodes on free ports.

mod certs;
mod harness;

mod bench;
mod cli_errors;
mod conformance;
mod faults;
mod grpc;
mod hostile;
mod outages;
mod python_sdk;
mod scenarios;
mod security;
mod up;
