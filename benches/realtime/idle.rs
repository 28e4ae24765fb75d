//! Idle capacity: many connections, memory per connection, connect rate.

use crate::Section;

pub(crate) async fn run(_full: bool) -> Section {
    Section {
        name: "idle",
        ..Section::default()
    }
}
