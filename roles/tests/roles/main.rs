//! The roles on a real SLIM server: a server of our own runs in this process on a free local
//! port, and real nodes play their roles on it, as the `slim-node up` command starts them.
//! Each file pins the behaviours of one part: the moderator, the participant, receiving
//! (acknowledgements, copies), the sender, the supervisor.

// The futures of a whole group (nodes, SLIM's sessions) nest deeper than the default allows.
#![recursion_limit = "256"]

mod moderator;
mod participant;
mod receive;
mod sender;
mod supervisor;
mod support;
