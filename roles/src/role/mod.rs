//! The roles: the moderator that creates the group
//! session and invites its peers, the participant that waits for an invitation, and the
//! supervisor that keeps the connection and restarts the role when it ends.

pub(crate) mod moderator;
pub(crate) mod participant;
pub(crate) mod signal_moderator;
pub(crate) mod supervisor;
