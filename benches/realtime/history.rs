//! History pages at 10M stored messages (bulk-loaded with COPY).

use crate::Section;

pub(crate) async fn run(_full: bool) -> Section {
    Section {
        name: "history",
        ..Section::default()
    }
}
