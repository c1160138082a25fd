//! History: what arrived, kept in a [`store`] by the `store` sink and served back by the
//! query [`api`] page by page with a sealed [`cursor`]; [`client`] is the other end
//! (`slim-node fetch` and `slim-node replay`).

pub mod api;
pub mod client;
pub mod cursor;
pub mod query;
pub mod store;
