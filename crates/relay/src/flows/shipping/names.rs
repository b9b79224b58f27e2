//! The names the shipping flow records under: the flow (entities, cursor, dead letters), the
//! alerts cursor, and the steps of an entity.

/// The flow's name: its entities, its cursor, its dead letters.
pub const FLOW: &str = "shipping";
/// The cursor of the nShift alerts feed (nShift's `fetchId`).
pub const ALERTS_CURSOR: &str = "shipping-alerts";
/// Minutes the poll reaches back before its cursor, for orders committed late.
pub(crate) const CURSOR_OVERLAP_MINUTES: i64 = 5;

/// Step names recorded in the entity.
pub(crate) mod steps {
    /// Order read from Norce, mapping checked.
    pub const RESOLVED: &str = "resolved";
    /// Printed in nShift; the shipment ids and parcel numbers are in the payload.
    pub const BOOKED: &str = "booked";
    /// Labels written to the labels folder.
    pub const LABELS_SAVED: &str = "labels_saved";
    /// The delivery note is on the Norce order.
    pub const NOTE_CREATED: &str = "note_created";
    /// The Norce order status is set; the entity is Done.
    pub const STATUS_SENT: &str = "status_sent";
    /// A parcel status changed after the note was written: the note is sent again, then the
    /// entity is Done again.
    pub const PARCELS_CHANGED: &str = "parcels_changed";
    /// Back to the start: re-read the order from Norce (after a permanent booking failure, so
    /// a replay uses the corrected order).
    pub const REREAD: &str = "reread";
}
