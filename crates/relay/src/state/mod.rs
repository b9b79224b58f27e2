//! Durable state: entity records, cursors, the receivers' inbox and dead letters.
//!
//! One trait, [`Store`], so another backend can come later; [`SqliteStore`] is the default (a
//! file in the data folder, WAL mode). Every method is one short transaction, so a crash between
//! two calls leaves a consistent state: the flows record each step *after* the platform call
//! that made it, and every step is idempotent on replay (see each flow's docs).
//!
//! Finished state is bounded: [`Store::prune`] deletes processed inbox rows and clears the
//! payloads of finished entities by age and count ([`RetentionPolicy`]), in small batches, and
//! gives the freed pages back to the file system (see [`SqliteStore`]). A push whose key is
//! still queued but whose body changed supersedes the queued row ([`InboxPut::Updated`]);
//! [`Store::inbox_history`] lists the versions of a key.

mod postgres;
mod sqlite;
mod store;
#[cfg(test)]
mod tests;

pub use self::postgres::PgStore;
pub use self::sqlite::SqliteStore;
pub use self::store::*;
