//! What every writer (sqlx, diesel) shares: its options and their builder setters, the event
//! types it registers, and the codecs that turn events into rows.

mod codecs;
mod event_type;
mod options;
mod setters;

pub use codecs::Codecs;
pub use event_type::EventType;
pub use options::OutboxOptions;
